"""Dispatcher: the server's queue of tasks and the leases of the workers running them.

Work is leased, not given. A worker claims a queued task and gets an attempt id
and a lease; heartbeats renew the leases it holds; every write a worker makes
names its attempt and is refused once the task has moved on to another attempt
(fencing); a release is idempotent; a lease that runs out puts the task back in
the queue (up to `max_attempts` claims, then the task fails with the reason),
with the artifacts rolled back to what they were when the lost attempt was
claimed, so that the retry's output is the only copy.

Everything durable lives in the task store (each task's `DispatchState`); the
dispatcher keeps only what it can rebuild from there at start: the queue, the
connected workers and an index of leases for the reaper. Workers in this
process (`runtime.link.local`) and remote ones use the same worker link, hence
the same operations.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from actors.store_port import Lease, Route, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.states import IllegalTransition, ends_stream, is_terminal

__all__ = [
    "CancelPush",
    "DrainPush",
    "RunRequest",
    "Claim",
    "Dispatcher",
    "DispatcherStatistics",
    "HeartbeatReply",
    "NotClaimable",
    "Offer",
    "OutputOutOfOrder",
    "StaleAttempt",
    "UnknownWorker",
    "WorkerInfo",
    "WorkerSession",
    "route_from_metadata",
]

log = logging.getLogger(__name__)

ROUTE_KEYS = ("trio-a2a/priority", "trio-a2a/capabilities", "trio-a2a/worker", "trio-a2a/agent")


@attrs.frozen
class RunRequest:
    """A stored task to run, with what the request said about running it."""

    task_id: str
    metadata: dict[str, Any] = attrs.field(factory=dict)
    accepted_output_modes: Sequence[str] = ()
    principal: str = ""


class StaleAttempt(Exception):
    """A worker wrote for an attempt that is no longer the task's current one."""


class OutputOutOfOrder(Exception):
    """A worker's output frame is not the next one for its attempt (a resend of
    one already applied, or one beyond a gap): nothing was written."""

    def __init__(self, task_id: str, attempt_id: str, seq: int, applied: int) -> None:
        super().__init__(f"output seq {seq} of attempt {attempt_id!r} of task {task_id!r} "
                         f"is not next (applied through {applied})")
        self.seq = seq
        self.applied = applied


class NotClaimable(Exception):
    """The task cannot be claimed by this worker (taken, ended, or not routed to it)."""


class UnknownWorker(Exception):
    """The worker is not registered (it must register again, e.g. after a restart)."""


@attrs.frozen
class WorkerInfo:
    worker_id: str
    name: str = ""
    capabilities: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    max_concurrent: int = 1
    in_process: bool = False
    """Runs inside the server process (an embedded worker): its leases say so."""


@attrs.frozen
class Offer:
    task_id: str
    priority: int
    agent: str | None
    capabilities: tuple[str, ...]


@attrs.frozen
class CancelPush:
    task_id: str
    attempt_id: str
    reason: str


@attrs.frozen
class DrainPush:
    """Claim nothing more from this server: finish what runs."""

    reason: str


Push = Offer | CancelPush | DrainPush


@attrs.frozen
class Claim:
    """A granted claim: what the worker needs to run the task."""

    task_id: str
    attempt_id: str
    lease_expires_at: float
    record: TaskRecord

    def run_request(self) -> RunRequest:
        d = self.record.dispatch
        return RunRequest(task_id=self.task_id, metadata=dict(d.request_metadata or {}),
                          accepted_output_modes=d.accepted_output_modes,
                          principal=self.record.owner)


@attrs.frozen
class HeartbeatReply:
    renewed: tuple[tuple[str, str, float], ...]
    """(task id, attempt id, new expiry)."""
    lost: tuple[tuple[str, str, str], ...]
    """(task id, attempt id, reason): stop working on these."""
    cancel: tuple[tuple[str, str], ...]
    """(task id, attempt id): cancel these sessions."""
    unknown_worker: bool = False
    queued: int = 0
    """Tasks waiting that this worker may run: a worker that saw no offer for them
    claims without a task id (its pushes may be getting lost)."""
    drain: str | None = None
    """Why the worker should claim nothing more (None: carry on)."""


@attrs.frozen
class DispatcherStatistics:
    queued: int
    leased: int
    workers: int
    claims: int
    expired: int
    stale_writes: int


@attrs.define(eq=False)
class WorkerSession:
    """The dispatcher's side of one connected worker."""

    info: WorkerInfo
    pushes: trio.MemorySendChannel[Push]
    """Offers, cancellations and drain requests for the worker's link (bounded; a
    full channel drops them: offers are hints, the others are repeated in heartbeat
    replies)."""
    receive_pushes: trio.MemoryReceiveChannel[Push]
    active: dict[str, str] = attrs.field(factory=dict)
    """task id -> attempt id of the leases it holds."""
    offered: dict[str, float] = attrs.field(factory=dict)
    """task id -> when it was offered to this worker and not yet claimed by anyone."""
    last_seen: float = attrs.field(factory=trio.current_time)
    """When the worker last registered, heartbeated or claimed (trio time)."""
    unsent: int = 0
    """Pushes queued for the worker's link and not yet sent by it (`sent()`)."""

    def push_nowait(self, push: Push) -> None:
        """Queue a push for the link; `trio.WouldBlock` etc. as the channel raises."""
        self.pushes.send_nowait(push)
        self.unsent += 1

    def sent(self) -> None:
        """The link has sent (or given up on) one push taken from `receive_pushes`."""
        self.unsent -= 1

    def accepts(self, route: Route) -> bool:
        info = self.info
        if route.worker is not None and route.worker not in (info.worker_id, info.name):
            return False
        if route.agent is not None and route.agent not in info.agents:
            return False
        return set(route.capabilities) <= info.capabilities

    @property
    def free(self) -> int:
        return self.info.max_concurrent - len(self.active)

    @property
    def unpromised(self) -> int:
        """Free slots not spoken for by an outstanding offer."""
        return self.free - len(self.offered)


def route_from_metadata(*sources: dict[str, Any] | None,
                        names: Sequence[str] = ()) -> Route:
    """Read routing options from message or request metadata (first source wins).

    A value of the wrong kind raises ValueError naming the key, prefixed with its
    source's name from `names` (e.g. "params.message.metadata") when given.
    """
    found: dict[str, tuple[Any, str]] = {}
    for i, source in enumerate(sources):
        for key in ROUTE_KEYS:
            if source and key in source and key not in found:
                found[key] = (source[key], names[i] if i < len(names) else "metadata")

    def bad(key: str, want: str) -> ValueError:
        value, where = found[key]
        return ValueError(f"{where}[{key!r}] must be {want}, not {value!r}")

    caps: Any = found.get("trio-a2a/capabilities", (None,))[0]
    if caps is None:
        caps = ()
    elif isinstance(caps, str):
        caps = (caps,)
    elif not (isinstance(caps, list | tuple) and all(isinstance(c, str) for c in caps)):
        raise bad("trio-a2a/capabilities", "a string or a list of strings")
    priority: Any = found.get("trio-a2a/priority", (0,))[0]
    if isinstance(priority, str) and priority.strip().lstrip("+-").isdigit():
        priority = int(priority)  # ProtoJSON writes integers as strings too
    elif isinstance(priority, float) and priority.is_integer():
        priority = int(priority)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise bad("trio-a2a/priority", "an integer")
    names_of: dict[str, str | None] = {}
    for key, what in (("trio-a2a/worker", "a worker id or name"),
                      ("trio-a2a/agent", "an agent name")):
        value = found.get(key, (None,))[0]
        if value is not None and not (isinstance(value, str) and value):
            raise bad(key, f"{what} (a non-empty string)")
        names_of[key] = value
    return Route(priority=priority, capabilities=tuple(caps),
                 worker=names_of["trio-a2a/worker"], agent=names_of["trio-a2a/agent"])


def _status(record: TaskRecord, state: TaskState, text: str) -> StreamResponse:
    task = record.task
    msg = Message(message_id=str(uuid.uuid4()), role=Role.AGENT, parts=[Part(text=text)],
                  task_id=task.id, context_id=task.context_id)
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task.id, context_id=task.context_id, status=TaskStatus(state=state, message=msg)))


def _artifact_marks(record: TaskRecord) -> tuple[tuple[str, int], ...]:
    return tuple((a.artifact_id, len(a.parts)) for a in record.task.artifacts or ())


def _rollback(record: TaskRecord) -> tuple[StreamResponse, ...]:
    """Undo what a lost attempt added to the task's artifacts, before its retry.

    Without this a retry's artifact (agents pick fresh ids) would sit beside the
    dead attempt's partial copy of it. Artifacts the attempt created are dropped
    and parts it appended cut off. It is a `task` event, so the log, its replay
    and live subscribers all see the same snapshot the store keeps.
    """
    marks = record.dispatch.claim_artifacts
    artifacts = record.task.artifacts or []
    if marks is None:
        return ()
    kept = dict(marks)
    rolled = [a.model_copy(update={"parts": a.parts[:kept[a.artifact_id]]})
              for a in artifacts if a.artifact_id in kept]
    if rolled == artifacts:
        return ()
    return (StreamResponse(task=record.task.model_copy(update={"artifacts": rolled})),)


class Dispatcher:
    """Queue, claims, leases and fencing; see the module docstring.

    `lease_ttl` is how long a claim holds without a heartbeat; `reap_interval`
    how often expired leases are looked for; `max_attempts` how many claims a
    task gets before a lost lease fails it; `push_queue` bounds each worker's
    channel of offers and cancellations; `offer_timeout` (default: a heartbeat
    interval, `lease_ttl / 3`) how long an unclaimed offer holds its task before
    the task is offered to another worker.
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
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._store = store
        self.lease_ttl = lease_ttl
        self._reap_interval = reap_interval
        self._max_attempts = max_attempts
        self._push_queue = push_queue
        self._offer_timeout = lease_ttl / 3 if offer_timeout is None else offer_timeout
        self._new_id = new_id
        self._queue: dict[str, tuple[int, int, Route]] = {}
        """task id -> (-priority, arrival number, route); dict order is arrival order."""
        self._arrivals = 0
        self._workers: dict[str, WorkerSession] = {}
        self._leases: dict[str, Lease] = {}
        self._offered_to: dict[str, WorkerSession] = {}
        """Queued task id -> the worker its outstanding offer went to."""
        self._cancel_requested: set[str] = set()
        self._draining: str | None = None
        self._changed = trio.Event()
        self._claims = self._expired = self._stale = 0

    def statistics(self) -> DispatcherStatistics:
        return DispatcherStatistics(
            queued=len(self._queue), leased=len(self._leases), workers=len(self._workers),
            claims=self._claims, expired=self._expired, stale_writes=self._stale,
        )

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- life ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild the queue and lease index from the store, then reap expired leases.

        A lease of an embedded worker of the previous server process ends at once:
        that worker stopped with the process. Remote workers keep theirs until they
        expire (they may reconnect and renew them)."""
        ended: list[tuple[str, Lease]] = []
        for record in await self._store.list_unfinished():
            lease = record.dispatch.lease
            if lease is not None:
                self._leases[record.task_id] = lease
                if lease.in_process:
                    ended.append((record.task_id, lease))
            else:
                self._enqueue(record.task_id, record.dispatch.route)
        for task_id, lease in ended:
            await self._end_lease(task_id, lease, f"worker {lease.worker_id!r} stopped with "
                                                  "the server")
        task_status.started()
        while True:
            await trio.sleep(self._reap_interval)
            await self.reap()

    def _enqueue(self, task_id: str, route: Route) -> None:
        self._arrivals += 1
        self._queue[task_id] = (-route.priority, self._arrivals, route)
        self._offer(task_id, route)
        self._wake()

    def _responsive(self, session: WorkerSession) -> bool:
        """Heard from within a lease TTL (a healthy worker heartbeats three times as
        often): a worker that hangs while connected gets no offers."""
        return trio.current_time() - session.last_seen <= self.lease_ttl

    def _offer(self, task_id: str, route: Route) -> None:
        """Push an offer to the responsive eligible worker with the most free slots
        no other offer has spoken for; with none, the task waits for a slot."""
        if self._draining is not None:
            return
        best = None
        for session in self._workers.values():
            if session.unpromised > 0 and session.accepts(route) and self._responsive(session):
                if best is None or session.unpromised > best.unpromised:
                    best = session
        if best is not None:
            self._push_offer(best, task_id, route)

    def _push_offer(self, session: WorkerSession, task_id: str, route: Route) -> bool:
        try:
            session.push_nowait(Offer(task_id, route.priority, route.agent,
                                             route.capabilities))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False  # offers are hints: the worker also polls
        self._withdraw(task_id)
        session.offered[task_id] = trio.current_time()
        self._offered_to[task_id] = session
        return True

    def _withdraw(self, task_id: str) -> None:
        """The task was claimed, dequeued or offered elsewhere: forget its offer."""
        session = self._offered_to.pop(task_id, None)
        if session is not None:
            session.offered.pop(task_id, None)

    # --- the service's port ---------------------------------------------------------

    async def submit(self, req: RunRequest) -> None:
        """Queue a stored task (new, continued, or recovered after a restart)."""
        record = await self._store.head(req.task_id)
        if record is None:
            return
        dispatch = record.dispatch
        wanted = attrs.evolve(dispatch, request_metadata=dict(req.metadata) or None,
                              accepted_output_modes=tuple(req.accepted_output_modes))
        if (req.metadata or req.accepted_output_modes) and wanted != dispatch:
            dispatch = wanted  # a continuation brought new request metadata
            await self._store.write(req.task_id, (), dispatch=dispatch, wait=False)
        self._enqueue(req.task_id, dispatch.route)

    def cancel(self, task_id: str) -> bool:
        """Ask the worker holding the task to cancel it.

        True if a worker holds it (the task ends canceled when the worker
        releases it; heartbeat replies repeat the request). False if it is not
        leased: it is taken out of the queue and the caller ends it.
        """
        if task_id in self._queue:
            del self._queue[task_id]
            self._withdraw(task_id)
            self._wake()
            return False
        lease = self._leases.get(task_id)
        if lease is None:
            return False
        self._cancel_requested.add(task_id)
        session = self._workers.get(lease.worker_id)
        if session is not None:
            try:
                session.push_nowait(CancelPush(task_id, lease.attempt_id,
                                                      "canceled by request"))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the next heartbeat reply carries it
        return True

    # --- workers ----------------------------------------------------------------------

    def register(self, info: WorkerInfo) -> WorkerSession:
        """Connect a worker (again). Leases it held stay valid until they expire."""
        old = self._workers.get(info.worker_id)
        send, receive = trio.open_memory_channel[Push](self._push_queue)
        session = WorkerSession(info=info, pushes=send, receive_pushes=receive)
        if old is not None:
            old.pushes.close()
            for task_id in list(old.offered):
                self._withdraw(task_id)
            session.active = old.active
        else:
            session.active = {tid: lease.attempt_id for tid, lease in self._leases.items()
                              if lease.worker_id == info.worker_id}
        self._workers[info.worker_id] = session
        if self._draining is not None:
            session.push_nowait(DrainPush(self._draining))  # a fresh channel: room
        self._offer_queued_to(session)
        self._wake()
        log.info("worker registered", extra={"worker_id": info.worker_id, "worker_name": info.name,
                                             "capabilities": sorted(info.capabilities)})
        return session

    def drain(self, reason: str) -> None:
        """Ask every worker, now and on each later heartbeat or registration, to claim
        nothing more (finishing what it runs); no more offers go out. Claims are still
        granted: a worker that did not hear it yet is not refused work it asked for."""
        if self._draining is not None:
            return
        self._draining = reason
        log.info("draining workers", extra={"reason": reason, "workers": len(self._workers)})
        for session in self._workers.values():
            try:
                session.push_nowait(DrainPush(reason))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the next heartbeat reply carries it

    def queued_for(self, worker_id: str) -> int:
        """How many queued tasks this worker may run."""
        session = self._workers.get(worker_id)
        if session is None:
            return 0
        return sum(1 for _, _, route in self._queue.values() if session.accepts(route))

    async def claim_next(self, worker_id: str) -> Claim:
        """Claim the best queued task this worker may run (a poll, for a worker that
        gets no offers); `NotClaimable` if none waits or it has no free slot."""
        session = self._session(worker_id)
        while True:
            task_id = self._next_for(session) if session.free > 0 else None
            if task_id is None:
                raise NotClaimable(f"no task waits for worker {worker_id!r}")
            try:
                return await self.claim(worker_id, task_id)
            except NotClaimable:
                continue  # taken meanwhile: the next one

    def _offer_queued_to(self, session: WorkerSession) -> None:
        """Offer a worker with free slots the queued tasks it accepts, best first.

        Called when it connects, when one of its tasks ends and on its heartbeats,
        so a task queued while every worker was busy is offered as soon as a slot
        frees. A task with an outstanding offer to a live worker is skipped unless
        that offer is older than `offer_timeout` (its worker let it pass): one
        task, one offer at a time, so workers do not race to claim it.
        """
        room = session.unpromised
        if (room <= 0 or not self._queue or not self._responsive(session)
                or self._draining is not None):
            return
        now = trio.current_time()
        for task_id, (_, _, route) in sorted(self._queue.items(), key=lambda kv: kv[1][:2]):
            if room <= 0:
                return
            holder = self._offered_to.get(task_id)
            if holder is not None and (holder is session or (
                    self._workers.get(holder.info.worker_id) is holder
                    and self._responsive(holder)
                    and now - holder.offered[task_id] < self._offer_timeout)):
                continue
            if session.accepts(route):
                if not self._push_offer(session, task_id, route):
                    return
                room -= 1

    def unregister(self, worker_id: str, session: WorkerSession | None = None) -> None:
        """The worker's connection ended; its leases run until they expire."""
        current = self._workers.get(worker_id)
        if current is not None and (session is None or current is session):
            del self._workers[worker_id]
            current.pushes.close()
            for task_id in list(current.offered):
                self._withdraw(task_id)
                entry = self._queue.get(task_id)
                if entry is not None:
                    self._offer(task_id, entry[2])
            self._wake()

    def _session(self, worker_id: str) -> WorkerSession:
        session = self._workers.get(worker_id)
        if session is None:
            raise UnknownWorker(f"worker {worker_id!r} is not registered")
        return session

    def _next_for(self, session: WorkerSession) -> str | None:
        best: tuple[int, int] | None = None
        chosen = None
        for task_id, (neg_priority, arrival, route) in self._queue.items():
            if session.accepts(route) and (best is None or (neg_priority, arrival) < best):
                best, chosen = (neg_priority, arrival), task_id
        return chosen

    async def next_claim(self, worker_id: str) -> Claim:
        """Wait until a queued task suits this worker and it has a free slot; claim it."""
        while True:
            session = self._session(worker_id)
            task_id = self._next_for(session) if session.free > 0 else None
            if task_id is not None:
                try:
                    return await self.claim(worker_id, task_id)
                except NotClaimable:
                    continue
            await self._changed.wait()

    async def claim(self, worker_id: str, task_id: str) -> Claim:
        """Claim a task atomically: exactly one worker wins it."""
        session = self._session(worker_id)
        session.last_seen = trio.current_time()
        entry = self._queue.get(task_id)
        if entry is None:
            raise NotClaimable(f"task {task_id!r} is not waiting to be claimed")
        if not session.accepts(entry[2]):
            raise NotClaimable(f"task {task_id!r} is not routed to worker {worker_id!r}")
        if session.free <= 0:
            raise NotClaimable(f"worker {worker_id!r} already runs "
                               f"{session.info.max_concurrent} tasks")
        del self._queue[task_id]  # before any await: no other claim can see it now
        self._withdraw(task_id)
        requeue = entry
        attempt_id = self._new_id()
        expires = self._store.now() + self.lease_ttl
        lease = Lease(worker_id=worker_id, attempt_id=attempt_id, expires_at=expires,
                      in_process=session.info.in_process)
        self._leases[task_id] = lease
        session.active[task_id] = attempt_id

        def queued(record: TaskRecord) -> None:
            if ends_stream(record.state) or record.dispatch.lease is not None:
                raise NotClaimable(f"task {task_id!r} is {record.state.value}")

        head = await self._store.head(task_id)
        try:
            if head is None:
                raise NotClaimable(f"task {task_id!r} does not exist")
            dispatch = attrs.evolve(head.dispatch, attempts=head.dispatch.attempts + 1,
                                    lease=lease, last_attempt_id=attempt_id, output_seq=0,
                                    claim_artifacts=_artifact_marks(head))
            # Not waiting for the commit: nothing the worker does with the grant is
            # visible before a later write commits (and carries this one with it), and
            # if the server dies first the task is simply queued again on restart; a
            # worker still holding the lost attempt is then fenced out.
            record = await self._store.write(task_id, (), dispatch=dispatch, check=queued,
                                             wait=False)
        except BaseException as exc:
            self._leases.pop(task_id, None)
            session.active.pop(task_id, None)
            if not isinstance(exc, NotClaimable):
                self._queue[task_id] = requeue  # the store failed: the task is still queued
            raise
        self._claims += 1
        return Claim(task_id=task_id, attempt_id=attempt_id, lease_expires_at=expires,
                     record=record)

    async def heartbeat(self, worker_id: str, leases: Sequence[tuple[str, str]]
                        ) -> HeartbeatReply:
        """Renew the leases a worker reports; tell it which it lost and what to cancel."""
        session = self._workers.get(worker_id)
        if session is None:
            return HeartbeatReply(renewed=(), lost=(), cancel=(), unknown_worker=True)
        session.last_seen = trio.current_time()
        renewed, lost, cancel = [], [], []
        expires = self._store.now() + self.lease_ttl
        for task_id, attempt_id in leases:
            lease = self._leases.get(task_id)
            if lease is None or lease.attempt_id != attempt_id:
                lost.append((task_id, attempt_id, "the task's lease moved on"))
                session.active.pop(task_id, None)
                continue
            new = attrs.evolve(lease, expires_at=expires)
            self._leases[task_id] = new
            head = await self._store.head(task_id)
            if head is not None and head.dispatch.lease == lease:
                await self._store.write(task_id, (), dispatch=attrs.evolve(head.dispatch,
                                                                            lease=new),
                                        wait=False)
            renewed.append((task_id, attempt_id, expires))
            if task_id in self._cancel_requested:
                cancel.append((task_id, attempt_id))
        self._offer_queued_to(session)
        return HeartbeatReply(renewed=tuple(renewed), lost=tuple(lost), cancel=tuple(cancel),
                              queued=self.queued_for(worker_id), drain=self._draining)

    def _fence(self, task_id: str, attempt_id: str) -> Callable[[TaskRecord], None]:
        def check(record: TaskRecord) -> None:
            lease = record.dispatch.lease
            if lease is None or lease.attempt_id != attempt_id:
                self._stale += 1
                raise StaleAttempt(
                    f"attempt {attempt_id!r} of task {task_id!r} is no longer current"
                )
        return check

    async def write(self, task_id: str, attempt_id: str, events: Sequence[StreamResponse], *,
                    wait: bool = False, output_seq: int | None = None) -> TaskRecord:
        """A worker's events for its attempt; StaleAttempt if the attempt moved on.

        With `output_seq` (the worker link's frame number) the events are applied
        only if they are the attempt's next frame, else `OutputOutOfOrder`; the
        number is stored in the same write, so exactly-once survives a restart.
        """
        fence = self._fence(task_id, attempt_id)
        if output_seq is None:
            return await self._store.write(task_id, events, check=fence, wait=wait)

        def check(record: TaskRecord) -> None:
            fence(record)
            applied = record.dispatch.output_seq
            if output_seq != applied + 1:
                raise OutputOutOfOrder(task_id, attempt_id, output_seq, applied)

        return await self._store.write(
            task_id, events, check=check, wait=wait,
            dispatch=lambda d: attrs.evolve(d, output_seq=output_seq))

    async def release(self, task_id: str, attempt_id: str,
                      events: Sequence[StreamResponse] = (), *, wait: bool = True,
                      output_seq: int | None = None) -> bool:
        """End an attempt with its final events; idempotent.

        Returns True if this attempt had already been released (nothing written).
        With `output_seq`, `events` begin with the attempt's last output frame, which
        must be its next one (else `OutputOutOfOrder`, nothing written): frame and
        release then land in one write, and an event that breaks the lifecycle
        raises `IllegalTransition` instead of being dropped with the lease.
        """
        head = await self._store.head(task_id)
        if head is None:
            raise NotClaimable(f"task {task_id!r} does not exist")
        lease = head.dispatch.lease
        if lease is None or lease.attempt_id != attempt_id:
            if head.dispatch.last_attempt_id == attempt_id:
                return True
            self._stale += 1
            raise StaleAttempt(f"attempt {attempt_id!r} of task {task_id!r} is no longer current")
        dispatch = attrs.evolve(head.dispatch, lease=None)
        fence = self._fence(task_id, attempt_id)
        if output_seq is not None:
            dispatch = attrs.evolve(dispatch, output_seq=output_seq)

            def check(record: TaskRecord) -> None:
                fence(record)
                applied = record.dispatch.output_seq
                if output_seq != applied + 1:
                    raise OutputOutOfOrder(task_id, attempt_id, output_seq, applied)

            await self._store.write(task_id, events, dispatch=dispatch, check=check, wait=wait)
        else:
            try:
                await self._store.write(task_id, events, dispatch=dispatch, check=fence,
                                        wait=wait)
            except IllegalTransition:
                # the task ended meanwhile (e.g. canceled by the service): just drop the lease
                await self._store.write(task_id, (), dispatch=dispatch, wait=wait)
        self._drop_lease(task_id, lease.worker_id)
        return False

    def _drop_lease(self, task_id: str, worker_id: str) -> None:
        self._leases.pop(task_id, None)
        self._cancel_requested.discard(task_id)
        session = self._workers.get(worker_id)
        if session is not None:
            session.active.pop(task_id, None)
            self._offer_queued_to(session)
        self._wake()

    # --- the reaper -----------------------------------------------------------------

    async def reap(self) -> int:
        """Re-queue (or fail) tasks whose lease ran out; returns how many."""
        now = self._store.now()
        expired = [(tid, lease) for tid, lease in self._leases.items() if lease.expires_at < now]
        for task_id, lease in expired:
            await self._end_lease(task_id, lease, f"the lease of worker {lease.worker_id!r} "
                                                  "expired")
        return len(expired)

    async def _end_lease(self, task_id: str, lease: Lease, why: str) -> None:
        """Take a lease whose worker is gone: queue the task again (rolled back to
        what it was when the lost attempt was claimed), or fail it once the attempts
        are used up, or end it canceled if that was asked for."""
        head = await self._store.head(task_id)
        if head is None or head.dispatch.lease != lease:
            self._leases.pop(task_id, None)
            return
        self._expired += 1
        dispatch = attrs.evolve(head.dispatch, lease=None)
        if is_terminal(head.state):
            events: tuple[StreamResponse, ...] = ()
        elif task_id in self._cancel_requested:
            events = (_status(head, TaskState.CANCELED, f"canceled ({why})"),)
        elif head.dispatch.attempts >= self._max_attempts:
            events = (_status(head, TaskState.FAILED,
                              f"gave up after {head.dispatch.attempts} attempts: {why}"),)
        else:
            retry = (f"{why}; retrying (attempt {head.dispatch.attempts + 1} of "
                     f"{self._max_attempts})")
            events = (*_rollback(head), _status(head, TaskState.WORKING, retry))
        try:
            record = await self._store.write(task_id, events, dispatch=dispatch)
        except IllegalTransition:
            record = await self._store.write(task_id, (), dispatch=dispatch)
        self._drop_lease(task_id, lease.worker_id)
        log.warning("lease ended: %s", why, extra={
            "task_id": task_id, "worker_id": lease.worker_id,
            "attempt_id": lease.attempt_id, "state": record.state.value})
        if not ends_stream(record.state):
            self._enqueue(task_id, record.dispatch.route)
