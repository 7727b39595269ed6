"""A fleet of replicas on one PostgreSQL database and workers that move between them.

Real parts: each replica is `open_server(store="postgres")` with its own listener;
workers are real `open_worker`s over the WebSocket link (the HTTP binding too
where it matters) given the replicas' URLs; clients talk JSON-RPC over loopback.
The agent streams chunks and reports status in two phases; the test moves the
worker between them and then checks the task's event log as a replica serves it:
every event once, in order, the task completed once with its own output, on the
attempt it started with.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from actors.worker import Backoff, Push
from protocol import worker_link as wl
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import Connection, RunningWorker, WorkerConfig, WorkerRejected, open_worker
from runtime.worker.ws_link import open_websocket_link
from tests.conftest import Rpc, results, user_message
from tests.test_replicas import WORKER_TOKEN, client, replica_config, rpc_wait_state

TIMEOUT = 30
QUICK = WorkerConfig(seed=1, reconnect=Backoff(base=0.05, max=0.2))
"""Reconnects within a fraction of a second after a lost connection."""
NO_BACKOFF_WAIT = WorkerConfig(seed=1, reconnect=Backoff(base=120.0, max=120.0, jitter=0))
"""A lost connection would wait two minutes, beyond every test's bound: a test that
passes with it moved without a backoff."""


@attrs.define
class Phases:
    """Handles on the `mover` agents of one test."""

    gates: dict[str, trio.Event] = attrs.Factory(dict)
    reached: dict[tuple[str, int], trio.Event] = attrs.Factory(dict)
    started: list[tuple[str, str]] = attrs.Factory(list)
    """(worker label, task id) per agent call."""

    def gate(self, name: str) -> trio.Event:
        return self.gates.setdefault(name, trio.Event())

    def at(self, task_id: str, phase: int) -> trio.Event:
        return self.reached.setdefault((task_id, phase), trio.Event())


def mover(phases: Phases, label: str, *, open_gates: bool = False) -> AgentSpec:
    """Streams three chunks and a status, waits for the gate its text names, streams
    three more and a status, and completes saying which worker ran it. With
    `open_gates` it does not wait (a second worker finishing a task given back)."""

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        phases.started.append((label, ctx.task_id))
        aid = None
        for phase in (1, 2):
            for i in range(3):
                n = 3 * (phase - 1) + i
                aid = await emit.artifact_text(f"c{n} ", artifact_id=aid, append=n > 0)
            await emit.working(f"phase {phase} done")
            phases.at(ctx.task_id, phase).set()
            if phase == 1 and not open_gates:
                await phases.gate(ctx.text).wait()
        await emit.complete(f"done by {label}")

    return AgentSpec(name="mover", run=run)


async def send(rpc: Rpc, gate: str) -> str:
    result = await rpc.call("SendMessage", {"message": user_message(gate),
                                            "configuration": {"returnImmediately": True}})
    return str(result["task"]["id"])


async def event_log(rpc: Rpc, task_id: str) -> list[tuple[int, dict[str, Any]]]:
    frames = await rpc.stream("SubscribeToTask", {"id": task_id}, headers={"Last-Event-ID": "0"})
    return [(int(f.id or 0), r) for f, r in zip(frames, results(frames), strict=True)]


def summary(log: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """The log as short strings: chunk texts, status states (with their text)."""
    out = []
    for _, r in log:
        if "artifactUpdate" in r:
            out += [p["text"] for p in r["artifactUpdate"]["artifact"]["parts"]]
        elif "statusUpdate" in r:
            status = r["statusUpdate"]["status"]
            text = "".join(p.get("text", "") for p in status.get("message", {}).get("parts", []))
            out.append(f"{status['state'].removeprefix('TASK_STATE_').lower()}:{text}")
        elif "task" in r:
            out.append("task")
    return out


def check_one_clean_run(log: list[tuple[int, dict[str, Any]]], label: str) -> None:
    """Every event once, in order, consecutive ids, the run's own output, ended once."""
    ids = [i for i, _ in log]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert summary(log) == ["task", "working:", "c0 ", "c1 ", "c2 ", "working:phase 1 done",
                            "c3 ", "c4 ", "c5 ", "working:phase 2 done",
                            f"completed:done by {label}"], summary(log)


@attrs.define
class Stop:
    """Calling it stops the replica in the background; `done` is set once it has."""

    requested: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)

    def __call__(self) -> None:
        self.requested.set()


@contextlib.asynccontextmanager
async def replica(config: ServerConfig, *, graceful: bool = True
                  ) -> AsyncIterator[tuple[RunningServer, Stop]]:
    """A replica and what stops it: gracefully (as on SIGTERM), or not (as if it
    crashed: nothing handed over)."""
    async with trio.open_nursery() as nursery:
        stop = Stop()

        async def run(*, task_status: trio.TaskStatus[RunningServer]) -> None:
            try:
                with trio.CancelScope() as scope:
                    async with open_server(config) as srv:
                        task_status.started(srv)
                        await stop.requested.wait()
                        if not graceful:
                            scope.cancel()
                            await trio.lowlevel.checkpoint()
            finally:
                stop.done.set()

        srv = await nursery.start(run)
        yield srv, stop
        stop()


async def on_server(worker: RunningWorker, url: str) -> None:
    """Until the worker is registered on the server at `url` (callers bound it)."""
    while not (worker.statistics().connected and worker.statistics().server == url):  # noqa: ASYNC110
        await trio.sleep(0.01)


async def attempt_of(srv: RunningServer, task_id: str) -> str:
    """The task's current attempt, once `srv` has heard of its claim."""
    record = await srv.store.wait_record(task_id, lambda r: r.dispatch.lease is not None)
    assert record.dispatch.lease is not None
    return record.dispatch.lease.attempt_id


@pytest.mark.parametrize("graceful", [False, True], ids=["lost", "goaway"])
async def test_a_worker_moves_to_the_next_replica_and_its_task_carries_on(
        postgres_url: str, graceful: bool) -> None:
    """The worker runs a task through replica A; A is lost (then the worker tries the
    next URL after its backoff) or stops gracefully (then it says goaway and the
    worker moves at once: with a two-minute backoff the test could not pass
    otherwise). Phase 2 runs once A is gone (its output waits for the worker to move,
    then goes to B) or once the worker has moved."""
    phases = Phases()
    config = replica_config(postgres_url)
    with trio.fail_after(TIMEOUT):
        async with replica(config, graceful=graceful) as (a, stop_a), \
                open_server(config) as b, client(b) as rpc_b, open_worker(
                    [a.url, b.url], token=WORKER_TOKEN, agent=mover(phases, "w"),
                    worker_id="w", config=NO_BACKOFF_WAIT if graceful else QUICK) as worker:
            await on_server(worker, a.url)
            task_id = await send(rpc_b, "go")
            await phases.at(task_id, 1).wait()
            attempt = await attempt_of(b, task_id)
            claimed = await b.store.get_task(task_id)
            assert claimed is not None and claimed.dispatch.lease is not None
            stop_a()
            if graceful:
                await on_server(worker, b.url)  # moved: phase 2 goes through B
            else:
                await stop_a.done.wait()  # A is gone: phase 2 waits for the worker to move
            phases.gate("go").set()
            # the worker's first heartbeat on B (at once: it was registered before)
            # renews the lease there (A's would come after 30 s)
            await b.store.wait_record(task_id, lambda r: r.dispatch.lease is None or (
                r.dispatch.lease.expires_at > claimed.dispatch.lease.expires_at))
            await rpc_wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
            assert worker.statistics().server == b.url
            assert worker.statistics().moves == (1 if graceful else 0)
            assert worker.connection is not None
            # a goaway starts the connection afresh: no restart, so no backoff
            restarts = worker.connection.supervisor.statistics().total_restarts
            assert restarts == 0 if graceful else restarts >= 1
            log = await event_log(rpc_b, task_id)
            final = await b.store.get_task(task_id)
    check_one_clean_run(log, "w")
    assert phases.started == [("w", task_id)]
    assert final is not None and final.dispatch.attempts == 1
    assert final.dispatch.last_attempt_id == attempt


async def test_a_worker_on_the_http_binding_moves_on_goaway_too(postgres_url: str) -> None:
    phases = Phases()
    config = replica_config(postgres_url, handover_timeout=2.0)
    with trio.fail_after(TIMEOUT):
        async with replica(config) as (a, stop_a), open_server(config) as b, \
                client(b) as rpc_b, open_worker(
                    [a.url, b.url], token=WORKER_TOKEN, agent=mover(phases, "h"),
                    worker_id="h", transport="http", config=NO_BACKOFF_WAIT) as worker:
            await on_server(worker, a.url)
            task_id = await send(rpc_b, "go")
            await phases.at(task_id, 1).wait()
            stop_a()
            await on_server(worker, b.url)
            phases.gate("go").set()
            await rpc_wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
            log = await event_log(rpc_b, task_id)
    assert worker.statistics().moves == 1
    check_one_clean_run(log, "h")


async def test_a_refused_token_still_stops_a_worker_with_several_urls(
        postgres_url: str) -> None:
    config = replica_config(postgres_url)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as a, open_server(config) as b:
            with pytest.raises(WorkerRejected, match="refused the worker token"):
                async with open_worker([a.url, b.url], token="wrong", config=QUICK):
                    await trio.sleep_forever()


class _DeafToGoAway:
    """A WebSocket link that drops ``goaway`` pushes, as a worker from before them."""

    def __init__(self, inner: Connection, pushes: trio.MemoryReceiveChannel[Push]) -> None:
        self._inner = inner
        self.pushes = pushes

    async def request(self, op: str, body: wl.LinkModel) -> wl.LinkModel:
        return await self._inner.request(op, body)

    async def serve(self) -> None:
        await self._inner.serve()


def old_worker_connect(url: Callable[[], str]
                       ) -> Callable[[], contextlib.AbstractAsyncContextManager[Connection]]:
    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Connection]:
        async with open_websocket_link(url(), token=WORKER_TOKEN) as link, \
                trio.open_nursery() as nursery:
            send_push, receive_push = trio.open_memory_channel[Push](64)

            async def forward() -> None:
                async with send_push:
                    async for push in link.pushes:
                        if not isinstance(push, wl.GoAwayBody):
                            await send_push.send(push)

            nursery.start_soon(forward)
            yield _DeafToGoAway(link, receive_push)
            nursery.cancel_scope.cancel()

    return connect


async def test_a_draining_replica_refuses_claims_says_so_and_an_old_worker_carries_on(
        postgres_url: str) -> None:
    """A worker that ignores goaway holds A's handover open: meanwhile A's /readyz says
    draining, A grants no claim and refuses new worker links (503); once A has stopped
    the worker reconnects after its backoff (to B) and finishes its task there."""
    phases = Phases()
    config = replica_config(postgres_url, handover_timeout=3.0)
    urls: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with replica(config) as (a, stop_a), open_server(config) as b, \
                client(b) as rpc_b, client(a) as rpc_a, open_worker(
                    a.url, token=WORKER_TOKEN, agent=mover(phases, "old"), worker_id="old",
                    connect=old_worker_connect(lambda: urls[-1]), config=QUICK) as worker:
            urls.append(a.url)
            await worker.wait_registered()
            task_id = await send(rpc_b, "go")
            await phases.at(task_id, 1).wait()
            urls.append(b.url)
            waiting = await send(rpc_b, "later")  # queued while A drains
            stop_a()
            while a.dispatcher.draining is None:  # noqa: ASYNC110
                await trio.sleep(0.01)
            ready = await rpc_a.client.get("/readyz")
            assert ready.status_code == 503
            assert "draining: the server is shutting down" in ready.json()["reasons"]
            with pytest.raises(Exception, match="draining"):
                await a.dispatcher.claim("old", waiting)
            async with httpx.AsyncClient(timeout=5) as http:
                refused = await http.get(f"{a.url}/worker/link",
                                         headers={"Authorization": f"Bearer {WORKER_TOKEN}"})
            assert refused.status_code == 503
            assert "stopping" in refused.json()["error"]["message"]
            await on_server_url_change(worker)
            phases.gate("go").set()
            phases.gate("later").set()
            for t in (task_id, waiting):
                await rpc_wait_state(rpc_b, t, "TASK_STATE_COMPLETED")
            log = await event_log(rpc_b, task_id)
    check_one_clean_run(log, "old")
    assert [t for _, t in phases.started] == [task_id, waiting]


async def on_server_url_change(worker: RunningWorker) -> None:
    """Until the worker has registered a second time."""
    while not (worker.statistics().registrations >= 2  # noqa: ASYNC110
               and worker.statistics().connected):
        await trio.sleep(0.01)
