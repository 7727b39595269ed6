"""The worker's connection subtree: one connection to a server and the actors on it.

    connection (one_for_all, restarted with backoff and seeded jitter)
    +-- link        connects to the next server URL; reads frames until it closes
    +-- registrar   registers; attaches the link for the sessions
    +-- heartbeat   at once on a connection that replaces another, then periodic
    +-- claimer

Each connection goes to the next of the worker's server URLs, round-robin: with
several replicas of one server on one database, a worker whose replica is lost
carries on through another after the subtree's backoff, and the leases of its
running sessions with it (the database holds them). A replica that stops
gracefully says ``goaway``: the claimer waits for the answer of a claim in
flight, then `move` cancels the subtree and starts it afresh at once on the next
URL, without the backoff a lost connection waits out.

A refusal that retrying cannot fix (a bad token, a registration refused) is
handed to `on_rejected`, which stops the worker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import trio

from actors.worker import (
    Heartbeat,
    LinkDown,
    LinkSlot,
    ListModels,
    Registrar,
    RegistrationRefused,
    Sessions,
    TaskClaimer,
    WorkerIdentity,
)
from runtime.supervisor import ChildSpec, Supervisor
from runtime.worker.config import WorkerConfig
from runtime.worker.errors import WorkerRejected
from runtime.worker.ws_link import Connection

__all__ = ["ConnectTo", "ConnectionTree"]

log = logging.getLogger("runtime.worker.process")  # the worker's log: one place to look

ConnectTo = Callable[[str], AbstractAsyncContextManager[Connection]]
"""Opens a connection to the server at a URL."""


class ConnectionTree:
    """The connection subtree of one worker; see the module docstring. Its children
    are built afresh on every (re)start; `run` is the worker supervisor's child."""

    def __init__(self, *, urls: Sequence[str], connect_to: ConnectTo, slot: LinkSlot,
                 sessions: Sessions, identity: WorkerIdentity, config: WorkerConfig,
                 list_models: ListModels | None, rng: random.Random,
                 on_rejected: Callable[[BaseException], None]) -> None:
        if not urls:
            raise ValueError("a worker needs at least one server URL")
        self.urls = tuple(urls)
        self._connect_to = connect_to
        self._slot = slot
        self._sessions = sessions
        self._identity = identity
        self._config = config
        self._list_models = list_models
        self._rng = rng
        self._on_rejected = on_rejected
        self._turn = 0
        self._move_scope: trio.CancelScope | None = None
        self.link: Connection | None = None
        self.registrar: Registrar | None = None
        self.claimer: TaskClaimer | None = None
        self.heartbeat: Heartbeat | None = None
        self.server: str | None = None
        """The URL of the current (or last) connection."""
        self.connects = 0
        self.moves = 0
        """Connections a ``goaway`` moved to the next URL."""
        self.stopping: str | None = None
        """Why the worker claims nothing more (it is stopping), or None."""
        back = config.reconnect
        self.supervisor = Supervisor(
            "connection", self._specs(), strategy="one_for_all",
            max_restarts=config.reconnect_max_restarts, max_seconds=config.reconnect_window,
            backoff_base=back.base, backoff_factor=back.factor, backoff_max=back.max,
            jitter=back.jitter, stable_after=config.stable_after, rng=rng)

    def _specs(self) -> list[ChildSpec]:
        return [ChildSpec("link", self._link, shutdown_timeout=3.0),
                ChildSpec("registrar", self._registrar, shutdown_timeout=1.0),
                ChildSpec("heartbeat", self._heartbeat, shutdown_timeout=1.0),
                ChildSpec("claimer", self._claimer, shutdown_timeout=1.0)]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run the subtree (ready at once: connecting may take a while); afresh, at
        once, whenever `move` is called."""
        task_status.started()
        while True:
            with trio.CancelScope() as self._move_scope:
                await self.supervisor.run()
                return

    def move(self, reason: str) -> None:
        """The server is going away: connect to the next URL now, not after a backoff."""
        if self._move_scope is None or self._move_scope.cancel_called:
            return
        self.moves += 1
        log.info("server %s is going away (%s); moving to %s", self.server, reason,
                 self.urls[self._turn % len(self.urls)],
                 extra={"worker_id": self._identity.worker_id, "server": self.server,
                        "reason": reason})
        self._move_scope.cancel()

    def stop_claiming(self, reason: str) -> None:
        """Claim nothing more, on this connection and on any later one."""
        self.stopping = reason
        if self.claimer is not None:
            self.claimer.drain(reason)

    async def _link(self, *, task_status: trio.TaskStatus[None]) -> None:
        self.connects += 1
        self.link = None  # never the last incarnation's, closed, connection
        url = self.server = self.urls[self._turn % len(self.urls)]
        self._turn += 1
        try:
            async with self._connect_to(url) as link:
                self.link = link
                task_status.started()
                await link.serve()
        except WorkerRejected as exc:
            self._on_rejected(exc)
            await trio.sleep_forever()
        except LinkDown as exc:
            # Expected weather, not a bug: say why in one line (no traceback); the
            # supervisor restarts the subtree after its backoff all the same.
            log.warning("%s; reconnecting", exc, extra={"worker_id": self._identity.worker_id,
                                                         "connects": self.connects,
                                                         "server": url})

    def _no_link(self, task_status: trio.TaskStatus[None]) -> bool:
        """The connect failed (the link child returned): nothing to do but let the
        supervisor restart the subtree after its backoff."""
        if self.link is None:
            task_status.started()
            return True
        return False

    async def _registrar(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self._no_link(task_status):
            return
        assert self.link is not None
        cfg = self._config
        kw = {} if self._list_models is None else {"list_models": self._list_models}
        self.registrar = Registrar(self.link, self._slot, self._identity,
                                   retry=cfg.register_retry, rng=self._rng,
                                   ack_timeout=cfg.ack_timeout, **kw)
        try:
            await self.registrar.run(task_status=task_status)
        except RegistrationRefused as exc:
            self._on_rejected(WorkerRejected(str(exc)))
            await trio.sleep_forever()

    async def _heartbeat(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self._no_link(task_status):
            return
        assert self.link is not None and self.registrar is not None
        # Registered before (another connection, maybe another server): beat at once.
        self.heartbeat = Heartbeat(self.link, self.registrar, self._sessions,
                                   agent=self._identity.agents[0],
                                   interval=self._config.heartbeat_interval,
                                   on_drain=self._drain, on_queued=self._queued,
                                   beat_at_once=self._slot.attaches > 1)
        await self.heartbeat.run(task_status=task_status)

    def _drain(self, reason: str) -> None:
        if self.claimer is not None:
            self.claimer.drain(reason)

    def _queued(self, count: int) -> None:
        if self.claimer is not None:
            self.claimer.queued_hint(count)

    async def _claimer(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self._no_link(task_status):
            return
        assert self.link is not None
        cfg = self._config
        self.claimer = TaskClaimer(self.link, self._sessions,
                                   worker_id=self._identity.worker_id,
                                   poll_interval=cfg.poll_interval,
                                   ack_timeout=cfg.ack_timeout, on_move=self.move)
        if self.stopping is not None:
            self.claimer.drain(self.stopping)
        await self.claimer.run(task_status=task_status)
