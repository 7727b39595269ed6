"""A worker, wired and embeddable: `open_worker(server_urls, ...)`.

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
the new connection is registered. Given several server URLs (replicas on one
database), each connection goes to the next one, round-robin, after the
subtree's backoff. A server that is stopping says ``goaway``: the subtree is
then started afresh at once (no backoff) on the next URL, and the sessions'
leases carry on there. A refusal that retrying cannot fix (a bad token) stops
the worker: `open_worker` raises it.

`RunningWorker.shutdown(grace)` is the graceful stop (SIGTERM): claim nothing
more, let the running tasks finish for up to `grace` seconds, then give the
rest back ("requeue" releases: the server queues them again at once). The
worker logs one line when it stops.
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
from actors.worker import LinkSlot, ListModels, Sessions, WorkerIdentity
from runtime.agents import echo_agent
from runtime.agents.loader import load_agent
from runtime.supervisor import ChildSpec, Supervisor, unwrap_single
from runtime.worker.config import WorkerConfig
from runtime.worker.connection_tree import ConnectionTree
from runtime.worker.http_link import http_link_url, open_http_link
from runtime.worker.ws_link import Connect, Connection, link_url, open_websocket_link

__all__ = ["AGENTS", "RunningWorker", "WorkerConfig", "WorkerStatistics", "check_server_urls",
           "open_worker"]

log = logging.getLogger(__name__)

AGENTS: Mapping[str, AgentSpec] = {echo_agent.name: echo_agent}
"""The agents a worker can run by name (`--agent`)."""


@attrs.frozen
class WorkerStatistics:
    worker_id: str
    connected: bool
    """A registered connection is up."""
    server: str | None
    """The URL of the server of the current (or last) connection."""
    moves: int
    """Connections a server's ``goaway`` moved to another server."""
    connects: int
    """Connection attempts so far."""
    registrations: int
    running: int
    concurrency: int
    started: int
    outcomes: Mapping[str, int]
    coalesced: int = 0
    """Output text chunks folded into the one before them (none were dropped)."""


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
        self.connection: ConnectionTree | None = None
        self.supervisor: Supervisor | None = None
        self._scope: trio.CancelScope | None = None
        self._hurry = trio.Event()
        self.error: BaseException | None = None
        self.given_back = 0
        """Tasks `shutdown` gave back unfinished."""

    def statistics(self) -> WorkerStatistics:
        s = self.sessions.statistics()
        tree = self.connection
        return WorkerStatistics(
            worker_id=self.worker_id, connected=self.slot.is_up,
            server=tree.server if tree else None, moves=tree.moves if tree else 0,
            connects=tree.connects if tree else 0,
            registrations=self.slot.attaches, running=s.running, concurrency=s.concurrency,
            started=s.started, outcomes=s.outcomes, coalesced=s.coalesced)

    def is_running(self, task_id: str) -> bool:
        """A session of this worker runs the task."""
        return self.sessions.get(task_id) is not None

    async def wait_registered(self) -> None:
        """Until a registered connection is up."""
        await self.slot.wait_up()

    async def shutdown(self, grace: float | None = None) -> int:
        """The graceful stop: claim nothing more, let the running tasks finish for up
        to `grace` seconds (default `WorkerConfig.shutdown_grace`; `hurry()` cuts it
        short), then give the others back: their releases ("requeue") have the server
        queue them again at once, rather than after their leases run out. Waits up
        to `WorkerConfig.release_timeout` for those releases; returns how many tasks
        were asked to. Leave `open_worker`'s block afterwards."""
        grace = self.config.shutdown_grace if grace is None else grace
        if self.connection is not None:
            self.connection.stop_claiming("the worker is stopping")
        log.info("worker stopping: %d task(s) running, %g s to finish",
                 self.sessions.active, grace, extra={"worker_id": self.worker_id})
        with trio.move_on_after(grace):
            async with trio.open_nursery() as nursery:
                async def hurried() -> None:
                    await self._hurry.wait()
                    nursery.cancel_scope.cancel()
                nursery.start_soon(hurried)
                await self.sessions.wait_idle()
                nursery.cancel_scope.cancel()
        self.given_back += self.sessions.give_back_all()
        with trio.move_on_after(self.config.release_timeout):
            await self.sessions.wait_idle()
        return self.given_back

    def hurry(self) -> None:
        """Cut `shutdown`'s grace short: give the running tasks back now."""
        self._hurry.set()

    def _stop(self, error: BaseException) -> None:
        log.error("worker refused: %s", error, extra={"worker_id": self.worker_id})
        self.error = error
        if self._scope is not None:
            self._scope.cancel()

    def _log_stopped(self, started: float) -> None:
        s = self.statistics()
        outcomes = dict(s.outcomes)
        log.info("worker stopped after %.1f s: %d task(s) ended, %d given back, %d cut off",
                 trio.current_time() - started,
                 sum(n for k, n in outcomes.items() if k not in ("requeue", "lost")),
                 outcomes.get("requeue", 0), s.running + outcomes.get("lost", 0),
                 extra={"worker_id": self.worker_id, "outcomes": outcomes,
                        "server": s.server, "moves": s.moves})


def check_server_urls(urls: Sequence[str], transport: str) -> None:
    """ValueError naming the first URL the worker link cannot use (and its place)."""
    for i, url in enumerate(urls, 1):
        where = f" (entry {i} of {len(urls)})" if len(urls) > 1 else ""
        try:
            http_link_url(url) if transport == "http" else link_url(url)
        except ValueError as exc:
            raise ValueError(f"{exc}{where}") from None


def _agents(agent: str | AgentSpec | Sequence[str | AgentSpec]) -> list[AgentSpec]:
    """Specs as given; names resolved by `load_agent` (built-in, or 'module:attribute')."""
    items = [agent] if isinstance(agent, str | AgentSpec) else list(agent)
    out = [item if isinstance(item, AgentSpec) else load_agent(item, AGENTS) for item in items]
    if not out:
        raise ValueError("a worker needs at least one agent")
    return out


@contextlib.asynccontextmanager
async def open_worker(
    server_url: str | Sequence[str],
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

    `server_url` may be several URLs, replicas of one server: each connection goes
    to the next, round-robin (a ValueError names one the transport cannot use).
    It connects, registers and claims in the background and reconnects whenever
    the connection is lost (`wait_registered()` waits for the first registration).
    `transport` is the link's binding: "websocket" (``/worker/ws``) or "http"
    (``/worker/link``, for networks that block WebSockets). `connect` replaces
    the transport (tests pass a fake). `context_history` asks the server for the
    earlier tasks of each claimed task's context (default: if an agent wants it,
    `AgentSpec.context_history`). Raises `WorkerRejected` if the server refuses
    the worker. `RunningWorker.shutdown()` before leaving the block stops it
    gracefully; leaving it without stops the sessions where they are.
    """
    if transport not in ("websocket", "http"):
        raise ValueError(f"transport must be 'websocket' or 'http', not {transport!r}")
    urls = [server_url] if isinstance(server_url, str) else list(server_url)
    if not urls:
        raise ValueError("a worker needs at least one server URL")
    if connect is None:
        check_server_urls(urls, transport)
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

    def connect_to(url: str) -> AbstractAsyncContextManager[Connection]:
        if connect is not None:
            return connect()
        if transport == "http":
            return open_http_link(url, token=token, push_queue=config.push_queue,
                                  connect_timeout=config.connect_timeout,
                                  signing_key=config.signing_key)
        return open_websocket_link(url, token=token, push_queue=config.push_queue,
                                   connect_timeout=config.connect_timeout,
                                   disconnect_timeout=config.disconnect_timeout,
                                   signing_key=config.signing_key)

    tree = worker.connection = ConnectionTree(
        urls=urls, connect_to=connect_to, slot=slot, sessions=sessions, identity=identity,
        config=config, list_models=list_models, rng=rng, on_rejected=worker._stop)
    back = config.reconnect
    worker.supervisor = Supervisor(
        "worker", [ChildSpec("sessions", sessions.run),
                   ChildSpec("connection", tree.run, shutdown_timeout=6.0)],
        strategy="one_for_one", backoff_base=back.max, backoff_max=back.max, rng=rng)
    started = trio.current_time()
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            worker._scope = nursery.cancel_scope
            await nursery.start(worker.supervisor.run)
            log.info("worker started", extra={"worker_id": identity.worker_id,
                                              "server": ",".join(urls),
                                              "agents": identity.agents,
                                              "concurrency": concurrency,
                                              "transport": transport})
            try:
                yield worker
            finally:
                nursery.cancel_scope.cancel()
                worker._log_stopped(started)
    if worker.error is not None:
        raise worker.error
