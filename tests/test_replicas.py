"""Several server replicas on one PostgreSQL database behave as one server.

Real parts: each replica is `open_server(store="postgres")` on the run's database
with a pool, a change feed and an HTTP listener of its own, all in one trio
program; workers are real `open_worker`s on the WebSocket link of one replica or
another; clients talk JSON-RPC over loopback. The dispatchers' logic on virtual
time is in tests/test_dispatch_replicas.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import trio

from actors.worker import Backoff
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import Connection, RunningWorker, WorkerConfig, open_worker
from runtime.worker.ws_link import open_websocket_link
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message

TIMEOUT = 30
WORKER_TOKEN = "replica-worker-secret"


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


async def wait_state(rpc: Rpc, task_id: str, state: str) -> None:
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
    while its worker runs t1, b's runs t2. The restarted a (same replica id) queues t1
    again at once, long before its 90 s lease would run out, and leaves t2 to b."""
    on_a, again, on_b = Controls(), Controls(), Controls()

    def config(name: str, controls: Controls) -> ServerConfig:
        agent = attrs.evolve(scripted_agent(controls), name=f"agent-{name}")
        return replica_config(postgres_url, local_workers=1, replica_id=name, agent=agent)

    with trio.fail_after(TIMEOUT):
        async with open_server(config("b", on_b)) as b, client(b) as rpc_b:
            async with open_server(config("a", on_a)) as a, client(a) as rpc_a:
                t1 = (await rpc_b.call("SendMessage", held("agent-a")))["task"]["id"]
                t2 = (await rpc_a.call("SendMessage", held("agent-b")))["task"]["id"]
                for task_id in (t1, t2):
                    await wait_state(rpc_b, task_id, "TASK_STATE_WORKING")
            stopped = trio.current_time()
            async with open_server(config("a", again)):
                await again.wait_started(t1)
                requeued_after = trio.current_time() - stopped
                again.gate.set()
                on_b.gate.set()
                for task_id in (t1, t2):
                    await wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
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
                await wait_state(rpc_b, task_id, "TASK_STATE_COMPLETED")
                assert worker.statistics().registrations == 2
            final = await b.store.get_task(task_id)
    assert controls.started == [task_id] and controls.cancelled == []
    assert final is not None and final.dispatch.attempts == 1
    assert final.dispatch.last_attempt_id == attempt
