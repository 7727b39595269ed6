"""The workers connected to this process, and the offers and pushes sent to them.

All of it is per process: a worker's link ends at one server process, so its
session (the push channel, the slots its leases take, the offers it has not
answered) lives there and nowhere else; a restarted process starts with none
and the workers register again. The durable side of their work is the leases
(`actors.dispatch.leases`); a session's `active` only mirrors the ones it holds.

Offers are hints: one task has one outstanding offer at a time, to the
responsive eligible worker with the most slots no other offer has spoken for;
a full push channel drops them (workers also poll). Cancellations and drain
requests are repeated in heartbeat replies, so a dropped push is not lost.
"""

from __future__ import annotations

import attrs
import trio

from actors.dispatch.routing import TaskQueue
from actors.dispatch.types import CancelPush, DrainPush, Offer, Push, UnknownWorker, WorkerInfo
from actors.store_port import Route
from protocol.models import AgentSkill

__all__ = ["ConnectedWorkers", "WorkerSession"]

_UNDELIVERABLE = (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError)


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


class ConnectedWorkers:
    """The sessions of the connected workers, by worker id, and the offers out.

    Reads `queue` (never changes it) to know what to offer. `lease_ttl`: a
    worker not heard from for that long gets no offers; `push_queue` bounds each
    session's push channel; `offer_timeout` is how long an unclaimed offer holds
    its task before the task is offered to another worker.
    """

    def __init__(self, queue: TaskQueue, *, lease_ttl: float, push_queue: int,
                 offer_timeout: float) -> None:
        self._queue = queue
        self._lease_ttl = lease_ttl
        self._push_queue = push_queue
        self._offer_timeout = offer_timeout
        self._sessions: dict[str, WorkerSession] = {}
        self._offered_to: dict[str, WorkerSession] = {}
        """Queued task id -> the worker its outstanding offer went to."""
        self.draining: str | None = None
        """Why workers are to claim nothing more (None: they carry on)."""
        self.drained: dict[str, str] = {}
        """worker id -> why that worker is to claim nothing more (an operator asked)."""
        self.version = 0
        """Counts connects and disconnects: what was built from `infos()` is stale
        once it moves."""

    def infos(self) -> list[WorkerInfo]:
        """The connected workers, in the order they connected."""
        return [s.info for s in self._sessions.values()]

    def load(self) -> tuple[tuple[str, int, int], ...]:
        """(name or id, leases held, slots) of each connected worker."""
        return tuple((s.info.name or s.info.worker_id, len(s.active), s.info.max_concurrent)
                     for s in self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    def skills(self) -> list[AgentSkill]:
        """The skills of the connected workers' agents, each id once (first wins)."""
        seen: dict[str, AgentSkill] = {}
        for session in self._sessions.values():
            for skill in session.info.skills:
                seen.setdefault(skill.id, skill)
        return list(seen.values())

    def get(self, worker_id: str) -> WorkerSession | None:
        return self._sessions.get(worker_id)

    def session(self, worker_id: str) -> WorkerSession:
        """The worker's session; `UnknownWorker` if it is not connected."""
        session = self._sessions.get(worker_id)
        if session is None:
            raise UnknownWorker(f"worker {worker_id!r} is not registered")
        return session

    def connect(self, info: WorkerInfo, active: dict[str, str]) -> WorkerSession:
        """Open a session for the worker (closing the one it had), holding the
        leases `active`; send it a drain request if draining, and offers."""
        old = self._sessions.get(info.worker_id)
        send, receive = trio.open_memory_channel[Push](self._push_queue)
        session = WorkerSession(info=info, pushes=send, receive_pushes=receive)
        if old is not None:
            old.pushes.close()
            for task_id in list(old.offered):
                self.withdraw(task_id)
        session.active = active
        self._sessions.pop(info.worker_id, None)  # a reconnect moves to the end
        self._sessions[info.worker_id] = session
        self.version += 1
        reason = self.draining or self.drained.get(info.worker_id)
        if reason is not None:
            session.push_nowait(DrainPush(reason))  # a fresh channel: room
        self.offer_queued_to(session)
        return session

    def disconnect(self, worker_id: str, session: WorkerSession | None = None) -> bool:
        """Close the worker's session (only if it is `session`, when given) and
        offer its outstanding offers' tasks elsewhere; False if nothing closed."""
        current = self._sessions.get(worker_id)
        if current is None or (session is not None and current is not session):
            return False
        del self._sessions[worker_id]
        self.version += 1
        current.pushes.close()
        for task_id in list(current.offered):
            self.withdraw(task_id)
            route = self._queue.route(task_id)
            if route is not None:
                self.offer(task_id, route)
        return True

    def drain(self, reason: str) -> None:
        """Ask every worker to claim nothing more; later sessions are asked on connect."""
        if self.draining is not None:
            return
        self.draining = reason
        for session in self._sessions.values():
            try:
                session.push_nowait(DrainPush(reason))
            except _UNDELIVERABLE:
                pass  # the next heartbeat reply carries it

    def drain_one(self, worker_id: str, reason: str) -> bool:
        """Ask one connected worker to claim nothing more, now and whenever it
        reconnects; False if it is not connected."""
        session = self._sessions.get(worker_id)
        if session is None:
            return False
        self.drained[worker_id] = reason
        for task_id in list(session.offered):
            self.withdraw(task_id)
        try:
            session.push_nowait(DrainPush(reason))
        except _UNDELIVERABLE:
            pass  # the next heartbeat reply carries it
        return True

    def lease_ended(self, worker_id: str, task_id: str, attempt_id: str) -> bool:
        """The worker's attempt no longer holds its task (another replica ended or
        replaced its lease): free its slot and offer it queued work; False if the
        worker is not connected here or did not hold that attempt."""
        session = self._sessions.get(worker_id)
        if session is None or session.active.get(task_id) != attempt_id:
            return False
        del session.active[task_id]
        self.offer_queued_to(session)
        return True

    def push_cancel(self, worker_id: str, task_id: str, attempt_id: str, reason: str) -> None:
        """Tell the worker, if connected, to cancel its attempt (best effort)."""
        session = self._sessions.get(worker_id)
        if session is not None:
            try:
                session.push_nowait(CancelPush(task_id, attempt_id, reason))
            except _UNDELIVERABLE:
                pass  # the next heartbeat reply carries it

    # --- offers ---------------------------------------------------------------------

    def responsive(self, session: WorkerSession) -> bool:
        """Heard from within a lease TTL (a healthy worker heartbeats three times as
        often): a worker that hangs while connected gets no offers."""
        return trio.current_time() - session.last_seen <= self._lease_ttl

    def offer(self, task_id: str, route: Route, *, skip: str | None = None) -> None:
        """Push an offer to the responsive eligible worker with the most free slots
        no other offer has spoken for (other than worker `skip`); with none, the task
        waits for a slot."""
        if self.draining is not None:
            return
        best = None
        for session in self._sessions.values():
            if session.info.worker_id == skip:
                continue
            if (session.unpromised > 0 and session.accepts(route) and self.responsive(session)
                    and session.info.worker_id not in self.drained):
                if best is None or session.unpromised > best.unpromised:
                    best = session
        if best is not None:
            self._push_offer(best, task_id, route)

    def _push_offer(self, session: WorkerSession, task_id: str, route: Route) -> bool:
        try:
            session.push_nowait(Offer(task_id, route.priority, route.agent,
                                      route.capabilities))
        except _UNDELIVERABLE:
            return False  # offers are hints: the worker also polls
        self.withdraw(task_id)
        session.offered[task_id] = trio.current_time()
        self._offered_to[task_id] = session
        return True

    def withdraw(self, task_id: str) -> None:
        """The task was claimed, dequeued or offered elsewhere: forget its offer."""
        session = self._offered_to.pop(task_id, None)
        if session is not None:
            session.offered.pop(task_id, None)

    def offer_queued_to(self, session: WorkerSession) -> None:
        """Offer a worker with free slots the queued tasks it accepts, best first.

        Called when it connects, when one of its tasks ends and on its heartbeats,
        so a task queued while every worker was busy is offered as soon as a slot
        frees. A task with an outstanding offer to a live worker is skipped unless
        that offer is older than `offer_timeout` (its worker let it pass): one
        task, one offer at a time, so workers do not race to claim it.
        """
        room = session.unpromised
        if (room <= 0 or not self._queue or not self.responsive(session)
                or self.draining is not None or session.info.worker_id in self.drained):
            return
        now = trio.current_time()
        for task_id, route in self._queue.in_order():
            if room <= 0:
                return
            holder = self._offered_to.get(task_id)
            if holder is not None and (holder is session or (
                    self._sessions.get(holder.info.worker_id) is holder
                    and self.responsive(holder)
                    and now - holder.offered[task_id] < self._offer_timeout)):
                continue
            if session.accepts(route):
                if not self._push_offer(session, task_id, route):
                    return
                room -= 1
