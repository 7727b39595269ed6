"""Several server replicas on one PostgreSQL database behave as one server.

Real parts: each replica is `open_server(store="postgres")` on the run's database
with a pool, a change feed and an HTTP listener of its own, all in one trio
program; workers are real `open_worker`s on the WebSocket link of one replica or
another; clients talk JSON-RPC over loopback. The dispatchers' logic on virtual
time is in tests/test_dispatch_replicas.py.

The store's part first: replica A runs the tasks on its embedded worker, replica B
has no worker and only serves reads and streams. What B serves of a task A runs
must be what A stored, as soon as A stored it: B's task store follows A's commits
through the change feed (LISTEN/NOTIFY). The poll fallback is set to a minute
there, so anything faster than that was the notification's doing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from actors.worker import Backoff
from protocol.sse import SSEDecoder, SSEEvent
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import Connection, RunningWorker, WorkerConfig, open_worker
from runtime.worker.ws_link import open_websocket_link
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message, wait_state

TIMEOUT = 30
BOUND = 5.0
"""Seconds B may take to show what A stored (the notification takes milliseconds)."""
WORKER_TOKEN = "replica-worker-secret"


@asynccontextmanager
async def two_replicas(url: str, controls: Controls
                       ) -> AsyncIterator[tuple[RunningServer, Rpc, RunningServer, Rpc]]:
    """A (with the embedded worker) and B (without), both up before any task exists."""
    common: dict[str, Any] = {"port": 0, "store": "postgres", "database_url": url,
                              "agent": scripted_agent(controls), "store_poll_interval": 60.0}
    async with open_server(ServerConfig(**common)) as a, \
            open_server(ServerConfig(**common, local_workers=0)) as b, \
            httpx.AsyncClient(base_url=a.url, timeout=TIMEOUT) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=TIMEOUT) as cb:
        yield a, Rpc(ca, "1.0"), b, Rpc(cb, "1.0")


async def start(rpc: Rpc, text: str) -> dict[str, Any]:
    return (await rpc.call("SendMessage", {"message": user_message(text),
                                           "configuration": {"returnImmediately": True}}))["task"]


async def stream_frames(rpc: Rpc, task_id: str, into: list[SSEEvent], opened: trio.Event,
                        last_event_id: str | None = None) -> None:
    """SubscribeToTask, each frame appended as it arrives; `opened` set at the first."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with rpc.client.stream("POST", "/", content=json.dumps(body), headers=headers) as r:
        assert r.status_code == 200
        decoder = SSEDecoder()
        async for chunk in r.aiter_bytes():
            for frame in decoder.feed(chunk):
                if frame.data:  # not a keep-alive comment
                    into.append(frame)
                    opened.set()


async def log_of(rpc: Rpc, task_id: str) -> dict[int, dict[str, Any]]:
    """The whole event log of a task that has ended, as a replica serves it (a replay from
    Last-Event-ID 0): seq -> result."""
    frames = await rpc.stream("SubscribeToTask", {"id": task_id}, headers={"Last-Event-ID": "0"})
    return {int(f.id or 0): r for f, r in zip(frames, results(frames), strict=True)}


async def test_a_task_run_on_one_replica_is_served_final_by_the_other(
        postgres_url: str) -> None:
    controls = Controls()
    with trio.fail_after(TIMEOUT):
        async with two_replicas(postgres_url, controls) as (a, rpc_a, _, rpc_b):
            task = await start(rpc_a, "gated 2")
            await controls.wait_started(task["id"])
            await wait_state(a, task["id"], "TASK_STATE_WORKING")
            # B may read its cache a moment before A's notification arrives (a loaded
            # machine): wait, bounded, until B shows it; it is cached on B from then on
            with trio.fail_after(BOUND):
                await rpc_wait_state(rpc_b, task["id"], "TASK_STATE_WORKING")
            controls.gate.set()
            await wait_state(a, task["id"], "TASK_STATE_COMPLETED")
            done = trio.current_time()
            with trio.fail_after(BOUND):
                while True:
                    got = await rpc_b.call("GetTask", {"id": task["id"]})
                    if got["status"]["state"] == "TASK_STATE_COMPLETED":
                        break
                    await trio.sleep(0.005)
            took = trio.current_time() - done
            assert got == await rpc_a.call("GetTask", {"id": task["id"]})
            # (chunks may be coalesced into fewer parts on their way: compare the text)
            assert "".join(p["text"] for p in got["artifacts"][0]["parts"]) == "c0c1c2c3"
            assert took < BOUND


async def test_a_stream_on_one_replica_follows_a_task_run_on_the_other(
        postgres_url: str) -> None:
    """SubscribeToTask on B while A runs the task: every event once, in order, with
    consecutive ids, ending at the terminal state, exactly what A stored."""
    controls = Controls()
    with trio.fail_after(TIMEOUT):
        async with two_replicas(postgres_url, controls) as (a, rpc_a, b, rpc_b):
            task = await start(rpc_a, "gated 20")
            await controls.wait_started(task["id"])
            frames: list[SSEEvent] = []
            opened = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_frames, rpc_b, task["id"], frames, opened)
                await opened.wait()
                controls.gate.set()  # the rest of the run happens while B streams
            first = json.loads(frames[0].data)["result"]
            assert "task" in first  # the snapshot B had when the stream opened
            ids = [int(f.id or 0) for f in frames]
            assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # no gap, no duplicate
            last = json.loads(frames[-1].data)["result"]
            assert last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
            stored = await log_of(rpc_a, task["id"])
            assert ids[-1] == max(stored)
            assert [json.loads(f.data)["result"] for f in frames[1:]] == [
                stored[i] for i in ids[1:]]
            assert b.store.statistics().remote_changes > 0
            assert b.store.statistics().found_by_poll == 0


async def test_a_resumed_stream_on_one_replica_replays_exactly_the_rest(
        postgres_url: str) -> None:
    """Events written through A; `Last-Event-ID` on B replays exactly the ones after it,
    then follows the run live to its end."""
    controls = Controls()
    with trio.fail_after(TIMEOUT):
        async with two_replicas(postgres_url, controls) as (a, rpc_a, _, rpc_b):
            task = await start(rpc_a, "gated 10")
            await controls.wait_started(task["id"])
            # wait until A has stored the first chunks (the agent then waits on the gate)
            await a.store.wait_record(task["id"], lambda r: bool(r.task.artifacts) and "".join(
                p.text or "" for p in r.task.artifacts[0].parts).endswith("c9"))
            resume_at = 3
            stored_so_far = await a.store.get_task(task["id"])
            assert stored_so_far is not None and stored_so_far.seq > resume_at + 1
            frames: list[SSEEvent] = []
            opened = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_frames, rpc_b, task["id"], frames, opened,
                                   str(resume_at))
                await opened.wait()
                controls.gate.set()
            ids = [int(f.id or 0) for f in frames]
            stored = await log_of(rpc_a, task["id"])
            assert ids == list(range(resume_at + 1, max(stored) + 1))
            assert [json.loads(f.data)["result"] for f in frames] == [stored[i] for i in ids]
            assert stored[ids[-1]]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"



def replica_config(url: str, **options: Any) -> ServerConfig:
    settings: dict[str, Any] = dict(port=0, store="postgres", database_url=url,
                                    local_workers=0, worker_tokens={WORKER_TOKEN: "workers"})
    return ServerConfig(**{**settings, **options})


@contextlib.asynccontextmanager
async def worker_on(srv: RunningServer, controls: Controls, name: str, *,
                    concurrency: int = 4) -> AsyncIterator[RunningWorker]:
    async with open_worker(srv.url, token=WORKER_TOKEN, agent=scripted_agent(controls),
                           name=name, worker_id=name, concurrency=concurrency,
                           config=WorkerConfig(seed=1)) as worker:
        await worker.wait_registered()
        yield worker


@contextlib.asynccontextmanager
async def client(srv: RunningServer) -> AsyncIterator[Rpc]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
        yield Rpc(http, "1.0")


async def test_a_task_sent_to_one_replica_runs_on_a_worker_of_another(
        postgres_url: str) -> None:
    controls = Controls()
    config = replica_config(postgres_url)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as a, open_server(config) as b, \
                worker_on(a, controls, "wa"), client(b) as rpc_b:
            results = [await rpc_b.call("SendMessage", {"message": user_message(f"echo {i}")})
                       for i in range(3)]
    for i, result in enumerate(results):
        task = result["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
        assert "".join(p["text"] for p in task["artifacts"][0]["parts"]) == f"echo {i}"
    assert sorted(controls.started) == sorted(r["task"]["id"] for r in results)


async def test_tasks_sent_round_robin_to_replicas_with_workers_each_run_once(
        postgres_url: str) -> None:
    controls = Controls()
    config = replica_config(postgres_url)
    n = 100
    with trio.fail_after(TIMEOUT * 2):
        async with open_server(config) as a, open_server(config) as b, \
                worker_on(a, controls, "wa"), worker_on(b, controls, "wb"), \
                client(a) as rpc_a, client(b) as rpc_b:
            tasks: dict[int, dict[str, Any]] = {}

            async def send(i: int) -> None:
                rpc = (rpc_a, rpc_b)[i % 2]
                result = await rpc.call("SendMessage", {"message": user_message(f"echo {i}")})
                tasks[i] = result["task"]

            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(send, i)
    assert all(t["status"]["state"] == "TASK_STATE_COMPLETED" for t in tasks.values())
    ids = [t["id"] for t in tasks.values()]
    assert sorted(controls.started) == sorted(ids)  # every task run, none twice


async def test_cancel_sent_to_another_replica_reaches_the_worker(postgres_url: str) -> None:
    """The agent runs on a worker of replica A; CancelTask goes to B, then to C: the
    request is stored with the task, A hears of it and pushes it to its worker, the
    agent is cancelled and the task ends canceled."""
    controls = Controls()
    config = replica_config(postgres_url, cancel_timeout=5.0)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as a, open_server(config) as b, \
                open_server(config) as c, worker_on(a, controls, "wa"), \
                client(a) as rpc_a, client(b) as rpc_b, client(c) as rpc_c:
            canceled = []
            for rpc in (rpc_b, rpc_c):
                task = (await rpc_a.call("SendMessage", {
                    "message": user_message("wait"),
                    "configuration": {"returnImmediately": True}}))["task"]
                await controls.wait_started(task["id"])
                started = trio.current_time()
                with trio.fail_after(2.0):  # well inside the cancel timeout
                    result = await rpc.call("CancelTask", {"id": task["id"]})
                canceled.append((task["id"], result, trio.current_time() - started))
            for task_id, result, _ in canceled:
                assert result["status"]["state"] == "TASK_STATE_CANCELED", result
                again = await rpc_a.call("GetTask", {"id": task_id})
                assert again["status"]["state"] == "TASK_STATE_CANCELED"
    assert controls.cancelled == [task_id for task_id, _, _ in canceled]


async def rpc_wait_state(rpc: Rpc, task_id: str, state: str) -> None:
    """Until the task is in `state` (callers bound it)."""
    while True:
        if (await rpc.call("GetTask", {"id": task_id}))["status"]["state"] == state:
            return
        await trio.sleep(0.01)


def held(agent: str) -> dict[str, Any]:
    """SendMessage params of a `wait` task for that agent, returning at once."""
    return {"message": user_message("wait", metadata={"trio-a2a/agent": agent}),
            "configuration": {"returnImmediately": True}}


async def test_a_restarted_replica_requeues_its_own_embedded_work_at_once(
        postgres_url: str) -> None:
    """Replicas a and b each run one embedded worker, with agents of their own. a stops
    without handing over (as if it crashed) while its worker runs t1, b's runs t2. The
    restarted a (same replica id) queues t1 again at once, long before its 90 s lease
    would run out, and leaves t2 to b. (A graceful stop queues t1 again as it stops:
    tests/test_fleet.py.)"""
    on_a, again, on_b = Controls(), Controls(), Controls()

    def config(name: str, controls: Controls) -> ServerConfig:
        agent = attrs.evolve(scripted_agent(controls), name=f"agent-{name}")
        return replica_config(postgres_url, local_workers=1, replica_id=name, agent=agent)

    with trio.fail_after(TIMEOUT):
        async with open_server(config("b", on_b)) as b, client(b) as rpc_b:
            with trio.CancelScope() as crash:
                async with open_server(config("a", on_a)) as a, client(a) as rpc_a:
                    t1 = (await rpc_b.call("SendMessage", held("agent-a")))["task"]["id"]
                    t2 = (await rpc_a.call("SendMessage", held("agent-b")))["task"]["id"]
                    for task_id in (t1, t2):
                        await rpc_wait_state(rpc_b, task_id, "TASK_STATE_WORKING")
                    crash.cancel()
                    await trio.lowlevel.checkpoint()
            stopped = trio.current_time()
            async with open_server(config("a", again)):
                await again.wait_started(t1)
                requeued_after = trio.current_time() - stopped
                again.gate.set()
                on_b.gate.set()
                for task_id in (t1, t2):
                    await rpc_wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
                events = await rpc_b.stream("SubscribeToTask", {"id": t1},
                                            headers={"Last-Event-ID": "0"})
    assert on_a.started == again.started == [t1]
    assert on_b.started == [t2]  # t2 never left b's worker
    assert requeued_after < 5.0  # not the lease's 90 s
    notes = [r["statusUpdate"]["status"].get("message", {}).get("parts", [{}])[0]
             .get("text", "") for r in results(events) if "statusUpdate" in r]
    assert sum("stopped with the server; retrying (attempt 2 of 3)" in n for n in notes) == 1


async def registered_again(worker: RunningWorker) -> None:
    """Until the worker has registered a second time (callers bound it)."""
    while True:
        if worker.statistics().registrations >= 2 and worker.statistics().connected:
            return
        await trio.sleep(0.01)


async def test_a_worker_whose_replica_stops_carries_on_through_another(
        postgres_url: str) -> None:
    """A remote worker runs a task it claimed through replica A; A stops; the worker
    reconnects (as through a load balancer) to B, which knows its lease from the
    database: B renews it, takes the output and the release, and the task completes
    on its first attempt."""
    controls = Controls()
    config = replica_config(postgres_url)
    target: list[str] = []
    stop_a = trio.Event()

    def connect() -> contextlib.AbstractAsyncContextManager[Connection]:
        return open_websocket_link(target[0], token=WORKER_TOKEN)

    async def run_a(*, task_status: trio.TaskStatus[RunningServer]) -> None:
        async with open_server(config) as a:
            task_status.started(a)
            await stop_a.wait()

    with trio.fail_after(TIMEOUT):
        async with open_server(config) as b, client(b) as rpc_b, \
                trio.open_nursery() as nursery:
            a = await nursery.start(run_a)
            target.append(a.url)
            async with open_worker(
                    a.url, token=WORKER_TOKEN, agent=scripted_agent(controls),
                    worker_id="roaming", connect=connect,
                    config=WorkerConfig(seed=1, reconnect=Backoff(base=0.05, max=0.2)),
            ) as worker:
                await worker.wait_registered()
                task_id = (await rpc_b.call("SendMessage", {
                    "message": user_message("wait"),
                    "configuration": {"returnImmediately": True}}))["task"]["id"]
                await controls.wait_started(task_id)
                target[0] = b.url
                stop_a.set()
                await registered_again(worker)
                stored = await b.store.get_task(task_id)
                assert stored is not None and stored.dispatch.lease is not None
                attempt = stored.dispatch.lease.attempt_id
                reply = await b.dispatcher.heartbeat("roaming", [(task_id, attempt)])
                assert [r[:2] for r in reply.renewed] == [(task_id, attempt)], reply
                controls.gate.set()
                await rpc_wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
                assert worker.statistics().registrations == 2
            final = await b.store.get_task(task_id)
    assert controls.started == [task_id] and controls.cancelled == []
    assert final is not None and final.dispatch.attempts == 1
    assert final.dispatch.last_attempt_id == attempt
