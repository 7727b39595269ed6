"""Heartbeat: tells the server the worker lives and which leases it holds.

Every `interval` seconds (the server's `heartbeatInterval` from the register
reply, unless configured) it sends the worker id, agent name, idle/processing,
the number of running sessions and their leases. The reply renews those leases
and may name sessions to cancel (CancelTask: they end canceled and are
released), leases that were lost (those sessions stop without a release), a
drain request, or that the server does not know the worker (the Registrar
registers again). On a connection that replaces another (a reconnect, a move
to another server) the first heartbeat goes at once: the new server renews the
leases without waiting, and ends at once any lease it holds for this worker
that the worker does not run (a grant lost with the old connection), so that
task is queued again instead of waiting for its lease to run out. Its count
of tasks waiting for this worker goes to `on_queued` (the TaskClaimer polls for
them if no offer came).

A heartbeat that fails (link down, refused, no ack within the interval) is
logged as a warning, and every `failure_threshold`-th consecutive failure as an
error; the heartbeat never stops because of them. It lives in the connection
subtree: a new connection starts it afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from actors.worker.link_port import Link, LinkDown
from actors.worker.registrar import Registrar
from actors.worker.session import Sessions
from protocol.worker_link import UNKNOWN_WORKER, HeartbeatBody, HeartbeatReply, LinkRefusedError

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Periodic heartbeats on one connection; see the module docstring."""

    def __init__(
        self,
        link: Link,
        registrar: Registrar,
        sessions: Sessions,
        *,
        agent: str,
        interval: float | None = None,
        on_drain: Callable[[str], None] | None = None,
        on_queued: Callable[[int], None] | None = None,
        failure_threshold: int = 3,
        beat_at_once: bool = False,
    ) -> None:
        self._link = link
        self._registrar = registrar
        self._sessions = sessions
        self._agent = agent
        self._interval = interval
        self._on_drain = on_drain
        self._on_queued = on_queued
        self._threshold = failure_threshold
        self._beat_at_once = beat_at_once
        self.failures = 0
        """Consecutive failed heartbeats."""
        self.sent = 0
        self.last_reply: HeartbeatReply | None = None

    @property
    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        reply = self._registrar.reply
        if reply is None:
            raise RuntimeError("heartbeat before registration: configure an interval")
        return reply.heartbeat_interval

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._beat_at_once:
            await self.beat()
        while True:
            await trio.sleep(self.interval)
            await self.beat()

    async def beat(self) -> bool:
        """One heartbeat and its consequences; False if it failed."""
        sessions = self._sessions
        active = sessions.active
        body = HeartbeatBody(worker_id=self._registrar.identity.worker_id, agent=self._agent,
                             status="processing" if active else "idle", active_tasks=active,
                             leases=sessions.leases())
        self.sent += 1
        try:
            with trio.fail_after(self.interval):
                reply = await self._link.request("heartbeat", body)
        except LinkRefusedError as exc:
            if exc.code == UNKNOWN_WORKER:
                self._registrar.reregister()
            self._failed(str(exc))
            return False
        except (LinkDown, trio.TooSlowError) as exc:
            self._failed(str(exc) or "no ack within the interval")
            return False
        assert isinstance(reply, HeartbeatReply)
        self.failures = 0
        self.last_reply = reply
        for lost in reply.lost:
            sessions.cancel(lost.task_id, lost.attempt_id, release=False, reason=lost.reason)
        for ref in reply.cancel:
            sessions.cancel(ref.task_id, ref.attempt_id, release=True,
                            reason="canceled (heartbeat reply)")
        if reply.drain and self._on_drain is not None:
            self._on_drain("heartbeat reply")
        if self._on_queued is not None:
            self._on_queued(reply.queued)
        if reply.unknown_worker:
            self._registrar.reregister()
        return True

    def _failed(self, why: str) -> None:
        self.failures += 1
        extra = {"worker_id": self._registrar.identity.worker_id, "failures": self.failures,
                 "error": why}
        if self.failures % self._threshold == 0:
            log.error("%d consecutive heartbeats failed (last: %s); the worker carries on",
                      self.failures, why, extra=extra)
        else:
            log.warning("heartbeat failed: %s", why, extra=extra)
