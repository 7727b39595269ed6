"""A worker, wired and embeddable: `open_worker(server_url, ...)`.

The worker's supervision tree (runtime.supervisor), over a link transport
(`runtime.worker.ws_link` or `runtime.worker.http_link`):

    worker (one_for_one)
    +-- sessions        the sessions nursery: each claimed task runs here
    +-- connection (one_for_all, restarted with backoff and seeded jitter)
        +-- link        connects; reads frames until the connection closes
        +-- registrar   registers; attaches the link for the sessions
        +-- heartbeat
        +-- claimer

A lost connection (`LinkDown`) restarts the connection subtree only: running
sessions keep going, their output waits in bounded buffers and flows again once
the new connection is registered. A refusal that retrying cannot fix (a bad
token) stops the worker: `open_worker` raises it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal

import attrs
import trio

from actors.agent import AgentSpec
from actors.worker import (
    Backoff,
    Heartbeat,
    LinkDown,
    LinkSlot,
    ListModels,
    Registrar,
    RegistrationRefused,
    SessionConfig,
    Sessions,
    TaskClaimer,
    WorkerIdentity,
)
from runtime.agents import echo_agent
from runtime.agents.loader import load_agent
from runtime.supervisor import ChildSpec, Supervisor, unwrap_single
from runtime.worker.errors import WorkerRejected
from runtime.worker.http_link import open_http_link
from runtime.worker.ws_link import (
    Connect,
    Connection,
    open_websocket_link,
)

__all__ = ["AGENTS", "RunningWorker", "WorkerConfig", "WorkerStatistics", "open_worker"]

log = logging.getLogger(__name__)

AGENTS: Mapping[str, AgentSpec] = {echo_agent.name: echo_agent}
"""The agents a worker can run by name (`--agent`)."""


@attrs.frozen
class WorkerConfig:
    heartbeat_interval: float | None = None
    """Seconds between heartbeats; None: what the server says when registering."""
    poll_interval: float = 5.0
    """How soon a claim that failed for a passing reason is tried again."""
    ack_timeout: float = 30.0
    """Seconds without an ack before a frame is in doubt (resent, or the attempt fails)."""
    push_queue: int = 64
    """Pushes read but not yet handled, per connection (offers beyond are dropped)."""
    sessions: SessionConfig = SessionConfig()
    register_retry: Backoff = Backoff()
    """Backoff between registration attempts on one connection."""
    reconnect: Backoff = Backoff(base=0.5, factor=2.0, max=30.0, jitter=0.2)
    """Backoff before connecting again after the connection was lost (or never made)."""
    reconnect_max_restarts: int = 10
    reconnect_window: float = 60.0
    """More than that many reconnects in that many seconds: the connection subtree
    gives up and the worker supervisor starts it afresh."""
    stable_after: float = 30.0
    """A connection that lasted this long resets the reconnect backoff."""
    connect_timeout: float = 10.0
    disconnect_timeout: float = 2.0
    seed: int | None = None
    """Seeds the RNG of all jitter (None: random)."""


@attrs.frozen
class WorkerStatistics:
    worker_id: str
    connected: bool
    """A registered connection is up."""
    connects: int
    """Connection attempts so far."""
    registrations: int
    running: int
    concurrency: int
    started: int
    outcomes: Mapping[str, int]
    coalesced: int = 0
    """Output text chunks folded into the one before them (none were dropped)."""


class _ConnectionTree:
    """The children of the connection subtree, built afresh on every (re)start."""

    def __init__(self, worker: RunningWorker, connect: Connect, list_models: ListModels | None,
                 rng: random.Random) -> None:
        self._worker = worker
        self._connect = connect
        self._list_models = list_models
        self._rng = rng
        self.link: Connection | None = None
        self.registrar: Registrar | None = None
        self.claimer: TaskClaimer | None = None
        self.heartbeat: Heartbeat | None = None
        self.connects = 0

    def specs(self) -> list[ChildSpec]:
        return [ChildSpec("link", self._link, shutdown_timeout=3.0),
                ChildSpec("registrar", self._registrar, shutdown_timeout=1.0),
                ChildSpec("heartbeat", self._heartbeat, shutdown_timeout=1.0),
                ChildSpec("claimer", self._claimer, shutdown_timeout=1.0)]

    async def _link(self, *, task_status: trio.TaskStatus[None]) -> None:
        self.connects += 1
        self.link = None  # never the last incarnation's, closed, connection
        try:
            async with self._connect() as link:
                self.link = link
                task_status.started()
                await link.serve()
        except WorkerRejected as exc:
            self._worker._stop(exc)
            await trio.sleep_forever()
        except LinkDown as exc:
            # Expected weather, not a bug: say why in one line (no traceback); the
            # supervisor restarts the subtree after its backoff all the same.
            log.warning("%s; reconnecting", exc, extra={"worker_id": self._worker.worker_id,
                                                         "connects": self.connects})

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
        w, cfg = self._worker, self._worker.config
        kw = {} if self._list_models is None else {"list_models": self._list_models}
        self.registrar = Registrar(self.link, w.slot, w.identity, retry=cfg.register_retry,
                                   rng=self._rng, ack_timeout=cfg.ack_timeout, **kw)
        try:
            await self.registrar.run(task_status=task_status)
        except RegistrationRefused as exc:
            self._worker._stop(WorkerRejected(str(exc)))
            await trio.sleep_forever()

    async def _heartbeat(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self._no_link(task_status):
            return
        assert self.link is not None and self.registrar is not None
        w = self._worker
        self.heartbeat = Heartbeat(self.link, self.registrar, w.sessions,
                                   agent=w.identity.agents[0],
                                   interval=w.config.heartbeat_interval, on_drain=self._drain,
                                   on_queued=self._queued)
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
        w = self._worker
        self.claimer = TaskClaimer(self.link, w.sessions, worker_id=w.worker_id,
                                   poll_interval=w.config.poll_interval,
                                   ack_timeout=w.config.ack_timeout)
        await self.claimer.run(task_status=task_status)


class RunningWorker:
    """A worker running inside `open_worker`: its id, statistics, and the tree."""

    def __init__(self, identity: WorkerIdentity, sessions: Sessions, slot: LinkSlot,
                 config: WorkerConfig) -> None:
        self.identity = identity
        self.worker_id = identity.worker_id
        self.name = identity.name
        self.sessions = sessions
        self.slot = slot
        self.config = config
        self.connection: _ConnectionTree | None = None
        self.supervisor: Supervisor | None = None
        self._scope: trio.CancelScope | None = None
        self.error: BaseException | None = None

    def statistics(self) -> WorkerStatistics:
        s = self.sessions.statistics()
        return WorkerStatistics(
            worker_id=self.worker_id, connected=self.slot.is_up,
            connects=self.connection.connects if self.connection else 0,
            registrations=self.slot.attaches, running=s.running, concurrency=s.concurrency,
            started=s.started, outcomes=s.outcomes, coalesced=s.coalesced)

    def is_running(self, task_id: str) -> bool:
        """A session of this worker runs the task."""
        return self.sessions.get(task_id) is not None

    async def wait_registered(self) -> None:
        """Until a registered connection is up."""
        await self.slot.wait_up()

    def _stop(self, error: BaseException) -> None:
        log.error("worker stopped: %s", error, extra={"worker_id": self.worker_id})
        self.error = error
        if self._scope is not None:
            self._scope.cancel()


def _agents(agent: str | AgentSpec | Sequence[str | AgentSpec]) -> list[AgentSpec]:
    """Specs as given; names resolved by `load_agent` (built-in, or 'module:attribute')."""
    items = [agent] if isinstance(agent, str | AgentSpec) else list(agent)
    out = [item if isinstance(item, AgentSpec) else load_agent(item, AGENTS) for item in items]
    if not out:
        raise ValueError("a worker needs at least one agent")
    return out


@contextlib.asynccontextmanager
async def open_worker(
    server_url: str,
    *,
    token: str | None,
    agent: str | AgentSpec | Sequence[str | AgentSpec] = "echo",
    concurrency: int = 1,
    name: str | None = None,
    worker_id: str | None = None,
    capabilities: Sequence[str] = (),
    hostname: str | None = None,
    list_models: ListModels | None = None,
    context_history: bool | None = None,
    config: WorkerConfig = WorkerConfig(),
    connect: Connect | None = None,
    transport: Literal["websocket", "http"] = "websocket",
) -> AsyncIterator[RunningWorker]:
    """Run a worker for the server at `server_url` until the block exits.

    It connects, registers and claims in the background and reconnects whenever
    the connection is lost (`wait_registered()` waits for the first registration).
    `transport` is the link's binding: "websocket" (``/worker/ws``) or "http"
    (``/worker/link``, for networks that block WebSockets). `connect` replaces
    the transport (tests pass a fake). `context_history` asks the server for the
    earlier tasks of each claimed task's context (default: if an agent wants it,
    `AgentSpec.context_history`). Raises `WorkerRejected` if the server refuses
    the worker.
    """
    if transport not in ("websocket", "http"):
        raise ValueError(f"transport must be 'websocket' or 'http', not {transport!r}")
    agents = _agents(agent)
    rng = random.Random(config.seed)
    host = hostname or socket.gethostname()
    identity = WorkerIdentity(worker_id=worker_id or f"wrk-{uuid.uuid4().hex[:12]}",
                              name=name or host, hostname=host,
                              agents=tuple(a.name for a in agents),
                              max_concurrent_tasks=concurrency,
                              capabilities=tuple(capabilities),
                              context_history=any(a.context_history for a in agents)
                              if context_history is None else context_history,
                              skills=tuple(s for a in agents for s in a.card_skills()))
    slot = LinkSlot(traceparent=config.sessions.traceparent)
    sessions = Sessions(slot, agents, concurrency=concurrency, config=config.sessions, rng=rng)
    worker = RunningWorker(identity, sessions, slot, config)

    def connect_websocket() -> AbstractAsyncContextManager[Connection]:
        return open_websocket_link(server_url, token=token, push_queue=config.push_queue,
                                   connect_timeout=config.connect_timeout,
                                   disconnect_timeout=config.disconnect_timeout)

    def connect_http() -> AbstractAsyncContextManager[Connection]:
        return open_http_link(server_url, token=token, push_queue=config.push_queue,
                              connect_timeout=config.connect_timeout)

    default = connect_http if transport == "http" else connect_websocket
    tree = worker.connection = _ConnectionTree(worker, connect or default, list_models, rng)
    back = config.reconnect
    connection = Supervisor(
        "connection", tree.specs(), strategy="one_for_all",
        max_restarts=config.reconnect_max_restarts, max_seconds=config.reconnect_window,
        backoff_base=back.base, backoff_factor=back.factor, backoff_max=back.max,
        jitter=back.jitter, stable_after=config.stable_after, rng=rng)

    async def run_connection(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()  # ready at once: connecting may take a while
        await connection.run()

    worker.supervisor = Supervisor(
        "worker", [ChildSpec("sessions", sessions.run),
                   ChildSpec("connection", run_connection, shutdown_timeout=6.0)],
        strategy="one_for_one", backoff_base=back.max, backoff_max=back.max, rng=rng)
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            worker._scope = nursery.cancel_scope
            await nursery.start(worker.supervisor.run)
            log.info("worker started", extra={"worker_id": identity.worker_id,
                                              "server": server_url, "agents": identity.agents,
                                              "concurrency": concurrency,
                                              "transport": transport})
            yield worker
            nursery.cancel_scope.cancel()
    if worker.error is not None:
        raise worker.error
