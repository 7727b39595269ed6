"""TaskClaimer: turns the server's offers into claimed tasks, up to the limit.

It reads the connection's pushes: an ``offer`` names a task this worker may run;
a ``cancel`` goes straight to the session it names; a ``drain`` stops claiming;
a ``goaway`` (the server is stopping) stops claiming too, and once no claim is
in flight (its grant would be lost with the connection) it calls `on_move`: the
worker then connects to another server at once. Offers are kept (bounded;
highest priority first, then arrival) and claimed one at a time while a session
slot is free. Claiming is atomic on the server: a claim that is not granted
(another worker won, the task ended) drops the offer; one that fails for a
passing reason (INTERNAL, no ack) keeps it for the next poll. Each granted claim
starts one session in the sessions nursery, which is not part of the connection
subtree, so sessions outlive reconnects.

Polling, for when pushes stop (a push stream a proxy holds back, offers lost):
each heartbeat reply says how many queued tasks this worker may run
(`queued_hint`). If that is more than nothing while no push arrived since the
previous reply, the claimer claims without a task id ("whatever waits for me")
until a claim comes back empty or its slots are full. Offers it still knows
(seen while it was full, or whose claim failed) are claimed again every
`poll_interval` seconds; a session that ends frees a slot and triggers a claim
at once. A fresh registration makes the server offer its queue again.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable

import trio

from actors.worker.link_port import Link
from actors.worker.session import Sessions
from protocol.worker_link import (
    INTERNAL,
    UNKNOWN_WORKER,
    CancelBody,
    ClaimBody,
    ClaimReply,
    DrainBody,
    GoAwayBody,
    LinkRefusedError,
    OfferBody,
)

__all__ = ["TaskClaimer"]

log = logging.getLogger(__name__)

_PASSING = frozenset({INTERNAL, UNKNOWN_WORKER})


class TaskClaimer:
    """Claims offered tasks on one connection; see the module docstring."""

    def __init__(
        self,
        link: Link,
        sessions: Sessions,
        *,
        worker_id: str,
        poll_interval: float = 5.0,
        max_known: int = 256,
        ack_timeout: float = 30.0,
        on_move: Callable[[str], None] | None = None,
    ) -> None:
        self._link = link
        self._on_move = on_move
        self.moving: str | None = None
        """Why the server asked this worker to move (a ``goaway``), or None."""
        self._in_flight = False
        """A claim is waiting for its answer."""
        self._sessions = sessions
        self.worker_id = worker_id
        self._poll_interval = poll_interval
        self._max_known = max_known
        self._ack_timeout = ack_timeout
        self._known: dict[str, tuple[int, int, OfferBody]] = {}
        """task id -> (-priority, arrival, offer)."""
        self._retry_at: dict[str, float] = {}
        self._arrivals = itertools.count()
        self._changed = trio.Event()
        self.draining = False
        self.granted = 0
        self.not_granted = 0
        self.polled = 0
        """Tasks claimed without an offer (pushes were quiet)."""
        self._pushes = 0
        self._pushes_at_hint = 0
        self._poll = 0
        """Claims without a task id still to try."""

    @property
    def known(self) -> list[str]:
        """The offers waiting to be claimed, in the order they would be."""
        return [tid for tid, _ in sorted(self._known.items(), key=lambda kv: kv[1][:2])]

    def drain(self, reason: str) -> None:
        """Claim nothing more on this connection."""
        if not self.draining:
            log.info("draining: claiming no new tasks", extra={"reason": reason,
                                                               "worker_id": self.worker_id})
        self.draining = True
        self._known.clear()
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive_pushes)
            task_status.started()
            await self._claim_loop()

    def queued_hint(self, queued: int) -> None:
        """A heartbeat reply's count of tasks waiting that this worker may run."""
        quiet = self._pushes == self._pushes_at_hint
        self._pushes_at_hint = self._pushes
        # A full worker gets no offers anyway (and one when a slot frees): nothing odd.
        if queued > 0 and quiet and not self.draining and self._sessions.free > 0:
            log.info("%d task(s) wait for this worker but no offer came; claiming them",
                     queued, extra={"worker_id": self.worker_id})
            self._poll = queued
            self._wake()

    async def _receive_pushes(self) -> None:
        async for push in self._link.pushes:
            self._pushes += 1
            self._poll = 0  # pushes flow: offers name the tasks
            if isinstance(push, OfferBody):
                self._offered(push)
            elif isinstance(push, CancelBody):
                self._sessions.cancel(push.task_id, push.attempt_id, release=True,
                                      reason=push.reason)
            elif isinstance(push, DrainBody):
                self.drain(push.reason)
            elif isinstance(push, GoAwayBody):
                log.info("the server is going away: %s", push.reason,
                         extra={"worker_id": self.worker_id})
                self.moving = push.reason
                self.drain(push.reason)
                self._maybe_move()
        # The connection closed: the link's own task reports that; claims now fail.
        log.debug("push channel closed", extra={"worker_id": self.worker_id})

    def _offered(self, offer: OfferBody) -> None:
        if self.draining or offer.task_id in self._known:
            return
        if len(self._known) >= self._max_known:
            worst = max(self._known, key=lambda tid: self._known[tid][:2])
            if self._known[worst][0] <= -offer.priority:
                return  # every known offer ranks at least as high
            del self._known[worst]
            self._retry_at.pop(worst, None)
        self._known[offer.task_id] = (-offer.priority, next(self._arrivals), offer)
        self._wake()

    def _next(self) -> OfferBody | None:
        if self.draining or self._sessions.free <= 0:
            return None
        now = trio.current_time()
        ready = [entry for tid, entry in self._known.items()
                 if self._retry_at.get(tid, -1.0) <= now]
        return min(ready, key=lambda e: e[:2])[2] if ready else None

    def _maybe_move(self) -> None:
        """Move if asked to, unless a claim waits for its answer (its grant would be
        lost with the connection): then once it has had it."""
        if self.moving is not None and self._on_move is not None and not self._in_flight:
            on_move, self._on_move = self._on_move, None
            on_move(self.moving)

    async def _claim_loop(self) -> None:
        while True:
            self._maybe_move()
            offer = self._next()
            if offer is not None:
                await self.claim(offer)
                continue
            if self._poll > 0 and not self.draining and self._sessions.free > 0:
                await self.poll()
                continue
            if self.draining:
                await self._changed.wait()
                continue
            if self._sessions.free <= 0:
                await self._sessions.wait_changed()  # a session ended: a slot is free
                continue
            with trio.move_on_at(min(self._retry_at.values(), default=math.inf)):
                await self._changed.wait()  # an offer, or the next retry is due

    async def claim(self, offer: OfferBody) -> ClaimReply | None:
        """Claim one offered task and start its session if granted."""
        task_id = offer.task_id
        try:
            self._in_flight = True
            with trio.fail_after(self._ack_timeout):
                reply = await self._link.request("claim", ClaimBody(worker_id=self.worker_id,
                                                                    task_id=task_id))
        except trio.TooSlowError:
            return self._later(task_id, "no ack")
        except LinkRefusedError as exc:
            if exc.code in _PASSING:
                return self._later(task_id, str(exc))
            self._forget(task_id)
            self.not_granted += 1
            log.info("claim refused", extra={"task_id": task_id, "code": exc.code})
            return None
        finally:
            self._in_flight = False
        assert isinstance(reply, ClaimReply)
        self._forget(task_id)
        if not reply.granted:
            self.not_granted += 1
            log.debug("claim not granted", extra={"task_id": task_id, "reason": reply.reason})
            return reply
        self.granted += 1
        self._sessions.start(reply, agent=offer.agent)
        return reply

    async def poll(self) -> ClaimReply | None:
        """Claim whatever task waits for this worker (no offer named it)."""
        try:
            self._in_flight = True
            with trio.fail_after(self._ack_timeout):
                reply = await self._link.request("claim", ClaimBody(worker_id=self.worker_id))
        except (trio.TooSlowError, LinkRefusedError) as exc:
            self._poll = 0
            log.warning("claim without an offer failed: %s", exc or "no ack",
                        extra={"worker_id": self.worker_id})
            return None
        finally:
            self._in_flight = False
        assert isinstance(reply, ClaimReply)
        if not reply.granted or reply.task is None:
            self._poll = 0
            return reply
        self._poll -= 1
        self.granted += 1
        self.polled += 1
        self._forget(reply.task.id)
        self._sessions.start(reply)
        return reply

    def _later(self, task_id: str, why: str) -> None:
        self._retry_at[task_id] = trio.current_time() + self._poll_interval
        log.warning("claim failed (%s); trying again in %s s", why, self._poll_interval,
                    extra={"task_id": task_id})
        return None

    def _forget(self, task_id: str) -> None:
        self._known.pop(task_id, None)
        self._retry_at.pop(task_id, None)
