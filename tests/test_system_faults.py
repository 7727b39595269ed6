"""System-level faults on virtual time: the real server parts and real workers.

The server side is the real store (memory or a SQLite file), dispatcher (queue,
leases, reaper) and `WorkerLinkEndpoint`; the workers are real `open_worker`
trees (Registrar, Heartbeat, TaskClaimer, sessions, OutputStreamer,
StatusReporter). Only the wire is replaced: each worker connects through `Net`,
an in-process link that the test can freeze (a worker whose network or process
hangs: its requests never return) or cut (the server goes away). Randomness is
seeded; time is the mock clock, so lease expiry and retries happen at exact
virtual times.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.store_port import TaskBackend
from actors.task_store import ServerTaskStore
from actors.worker import LinkDown, Push
from protocol import worker_link as wl
from protocol.models import Task, TaskState
from runtime.link.local import InProcessLink, open_in_process_link
from runtime.store import open_memory_backend, open_sqlite_backend
from runtime.worker import Connection, RunningWorker, WorkerConfig, open_worker
from tests.sim import SimServer, open_sim_server

TTL = 30.0
REAP = 5.0


def slow_agent(pieces: list[str], pause: float) -> AgentSpec:
    """Streams `pieces` with `pause` virtual seconds before each but the first."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        artifact_id = None
        for i, piece in enumerate(pieces):
            if i:
                await trio.sleep(pause)
            artifact_id = await emit.artifact_text(piece, artifact_id=artifact_id,
                                                   append=i > 0)
        await emit.complete()

    return AgentSpec("slow", run)


class _NetLink:
    """An in-process link the test can freeze: its requests then never return."""

    def __init__(self, inner: InProcessLink, net: Net, name: str) -> None:
        self._inner = inner
        self._net = net
        self._name = name

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._inner.pushes

    async def request(self, op: str, body: wl.LinkModel) -> wl.LinkModel:
        await self._net.wait_unfrozen(self._name)
        reply = await self._inner.request(op, body)
        await self._net.wait_unfrozen(self._name)  # a frozen worker never hears the ack
        return reply

    async def serve(self) -> None:
        await self._inner.serve()


class Net:
    """Connects workers to whichever server is up (LinkDown while none is)."""

    def __init__(self) -> None:
        self.server: SimServer | None = None
        self._links: list[InProcessLink] = []
        self._frozen: dict[str, trio.Event] = {}

    def freeze(self, name: str) -> None:
        self._frozen[name] = trio.Event()

    def thaw(self, name: str) -> None:
        self._frozen.pop(name).set()

    async def wait_unfrozen(self, name: str) -> None:
        while (event := self._frozen.get(name)) is not None:
            await event.wait()

    def cut(self) -> None:
        """The server goes away: every open link drops."""
        self.server = None
        for link in self._links:
            link.close()
        self._links.clear()

    def connect(self, name: str) -> Callable[[], AbstractAsyncContextManager[Connection]]:
        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Connection]:
            server = self.server
            if server is None:
                raise LinkDown("the server is down")
            async with open_in_process_link(server.endpoint, durable_acks=True) as link:
                self._links.append(link)
                yield _NetLink(link, self, name)

        return connect


@contextlib.asynccontextmanager
async def open_sim_worker(net: Net, name: str, agent: AgentSpec, *, concurrency: int = 1,
                          seed: int) -> AsyncIterator[RunningWorker]:
    async with open_worker("in-process", token=None, agent=agent, concurrency=concurrency,
                           name=name, worker_id=name, connect=net.connect(name),
                           config=WorkerConfig(seed=seed)) as worker:
        await worker.wait_registered()
        yield worker


async def poll(condition: Callable[[], bool], every: float = 0.01) -> None:
    """Until `condition()` holds, looked at every `every` virtual seconds (free on
    the mock clock; the workers' statistics have no event to wait on)."""
    while not condition():  # noqa: ASYNC110
        await trio.sleep(every)


def artifact_text(task: Task) -> list[str]:
    return ["".join(p.text or "" for p in a.parts) for a in task.artifacts or ()]


async def final_states(store: ServerTaskStore, task_id: str) -> list[str]:
    out = []
    for stored in await store.read_events(task_id, 0, 1000):
        su = stored.event.status_update
        if su is not None and su.status.state in (TaskState.COMPLETED, TaskState.FAILED,
                                                   TaskState.CANCELED):
            out.append(su.status.state.value)
    return out


async def test_a_worker_that_dies_mid_task_loses_its_lease_and_another_finishes_it(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    net = Net()
    agent = slow_agent(["part one, ", "part two"], pause=20.0)
    with trio.fail_after(600):
        async with open_sim_server(open_memory_backend, itertools.count(1)) as server:
            net.server = server
            async with open_sim_worker(net, "wrk-a", agent, seed=1) as a:
                task_id = await server.submit()
                await poll(lambda: a.is_running(task_id))
                claimed_at = trio.current_time()
                await server.store.wait_record(task_id, lambda r: bool(r.task.artifacts))
                net.freeze("wrk-a")  # a hung worker: nothing it sends arrives any more
                async with open_sim_worker(net, "wrk-b", agent, seed=2) as b:
                    record = await server.store.wait_record(
                        task_id, lambda r: r.dispatch.attempts == 2)
                    retried_at = trio.current_time()
                    task = await server.wait_done(task_id)
                    done_at = trio.current_time()
                    # The hung worker wakes up: its held output and release are refused.
                    stale_before = server.dispatcher.statistics().stale_writes
                    net.thaw("wrk-a")
                    await poll(lambda: not a.statistics().running and not b.statistics().running)
                    stale_after = server.dispatcher.statistics().stale_writes
                    after = await server.store.get_task(task_id)
                    finals = await final_states(server.store, task_id)
    # (claimed at once; its lease ran to t=30, the reaper's next tick (every 5 s)
    # re-queued it at t=35 and wrk-b claimed it then; wrk-b's run took the agent's 20 s)
    assert claimed_at <= 0.01
    assert (retried_at, done_at) == (pytest.approx(35.0), pytest.approx(55.0))
    assert record.dispatch.lease is not None and record.dispatch.lease.worker_id == "wrk-b"
    # Exactly once: one completion, the dead attempt's partial artifact rolled back.
    assert artifact_text(task) == ["part one, part two"]
    assert finals == ["TASK_STATE_COMPLETED"]
    assert after is not None and after.task == task  # late writes changed nothing
    assert stale_after > stale_before
    assert a.statistics().outcomes == {"lost": 1}
    assert b.statistics().outcomes == {"completed": 1}
    assert server.dispatcher.statistics().expired == 1
    refusals = [r for r in caplog.records if getattr(r, "code", None) == wl.STALE_ATTEMPT]
    assert refusals and all(r.worker_id == "wrk-a" for r in refusals)  # type: ignore[attr-defined]


@pytest.fixture
def slow_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only once nothing has run for 0.25 s of real time:
    SQLite runs in worker threads, and the clock must not jump while one works
    (a jump past a thread still running is time that never passed for it)."""
    return trio.testing.MockClock(autojump_threshold=0.25)


async def test_server_restart_on_sqlite_with_workers_connected_loses_nothing(
        slow_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    net = Net()
    ids = itertools.count(1)
    agent = slow_agent(["a", "b", "c"], pause=10.0)

    def sqlite() -> AbstractAsyncContextManager[TaskBackend]:
        return open_sqlite_backend(tmp_path / "tasks.sqlite3")

    async def run_server(*, task_status: trio.TaskStatus[tuple[SimServer, trio.CancelScope,
                                                               trio.Event]]) -> None:
        stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                async with open_sim_server(sqlite, ids) as server:
                    task_status.started((server, scope, stopped))
                    await trio.sleep_forever()
        finally:
            stopped.set()

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            server, scope, stopped = await nursery.start(run_server)
            net.server = server
            async with open_sim_worker(net, "wrk-1", agent, concurrency=2, seed=11) as w1, \
                    open_sim_worker(net, "wrk-2", agent, concurrency=2, seed=12) as w2:
                tasks = [await server.submit(f"job {i}") for i in range(4)]
                await poll(lambda: w1.statistics().running + w2.statistics().running == 4)
                # t=5: every task has streamed "a"; the server stops (its links drop,
                # its store closes) and comes back on the same file at t=8.
                await trio.sleep(5.0 - trio.current_time())
                net.cut()
                scope.cancel()
                await stopped.wait()
                await trio.sleep(8.0 - trio.current_time())
                server, scope, stopped = await nursery.start(run_server)
                net.server = server
                done = [await server.wait_done(t) for t in tasks]
                await poll(lambda: not w1.statistics().running and not w2.statistics().running)
                stats = [w1.statistics(), w2.statistics()]
                records = [await server.store.head(t) for t in tasks]
                finals = [await final_states(server.store, t) for t in tasks]
            scope.cancel()
    # Nothing lost, nothing twice: every task completed on its first attempt, its
    # text streamed across the restart exactly once.
    assert [artifact_text(t) for t in done] == [["abc"]] * 4
    assert finals == [["TASK_STATE_COMPLETED"]] * 4
    assert [r.dispatch.attempts for r in records if r is not None] == [1, 1, 1, 1]
    # Both workers registered again after the restart and ran their sessions through.
    assert [s.registrations for s in stats] == [2, 2]
    assert [s.outcomes for s in stats] == [{"completed": 2}, {"completed": 2}]
