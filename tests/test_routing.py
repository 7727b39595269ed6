"""Routing through SendMessage, end to end: a real server with no local worker and
remote workers on its real WebSocket link (loopback), steered by the `trio-a2a/*`
metadata keys of the message or the request.

Each worker runs tiny agents that answer with an artifact naming the worker and
the agent that ran them, so the A2A API alone shows where a task went.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import httpx
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.worker import RunningWorker, WorkerConfig, open_worker
from tests.conftest import Rpc, user_message

WORKER_TOKEN = "route-worker-secret"
TIMEOUT = 20


class Runs:
    """What the agents saw: which worker/agent started each task, in start order,
    and the gates `hold KEY` tasks wait on."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self._started: dict[str, trio.Event] = {}
        self._gates: dict[str, trio.Event] = {}

    def gate(self, key: str) -> trio.Event:
        return self._gates.setdefault(key, trio.Event())

    def mark(self, task_id: str, label: str) -> None:
        self.started.append((task_id, label))
        self._started.setdefault(task_id, trio.Event()).set()

    async def wait_started(self, task_id: str) -> None:
        await self._started.setdefault(task_id, trio.Event()).wait()

    def order(self, task_ids: Sequence[str]) -> list[str]:
        """The given tasks in the order their agents started."""
        wanted = set(task_ids)
        return [t for t, _ in self.started if t in wanted]


def reporter(runs: Runs, worker: str, agent: str = "general") -> AgentSpec:
    """An agent that answers `WORKER/AGENT`; `hold KEY` first waits for that gate."""
    label = f"{worker}/{agent}"

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        runs.mark(ctx.task_id, label)
        cmd, _, arg = ctx.text.strip().partition(" ")
        if cmd == "hold":
            await runs.gate(arg).wait()
        await emit.artifact_text(label)
        await emit.complete()

    return AgentSpec(name=agent, run=run, description=f"reports {label}")


@attrs.frozen
class W:
    """A remote worker to start: its name, agents and capabilities."""

    name: str
    agents: tuple[str, ...] = ("general",)
    capabilities: tuple[str, ...] = ()
    concurrency: int = 2


ALPHA = W("alpha", ("general",), ("cpu",))
BETA = W("beta", ("general", "translate"), ("cpu", "gpu"))
GAMMA = W("gamma", ("summarize",), ("gpu", "big-mem"))


@contextlib.asynccontextmanager
async def connect(srv: RunningServer, runs: Runs, w: W) -> AsyncIterator[RunningWorker]:
    """One remote worker over the real WebSocket link, registered."""
    async with open_worker(srv.url, token=WORKER_TOKEN,
                           agent=[reporter(runs, w.name, a) for a in w.agents],
                           name=w.name, worker_id=f"id-{w.name}", capabilities=w.capabilities,
                           concurrency=w.concurrency, config=WorkerConfig(seed=7)) as worker:
        await worker.wait_registered()
        yield worker


@contextlib.asynccontextmanager
async def cluster(runs: Runs, *workers: W) -> AsyncIterator[tuple[RunningServer, Rpc]]:
    config = ServerConfig(port=0, store="memory", local_workers=0,
                          worker_tokens={WORKER_TOKEN: "workers"})
    async with open_server(config) as srv, contextlib.AsyncExitStack() as stack, \
            httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
        for w in workers:
            await stack.enter_async_context(connect(srv, runs, w))
        assert srv.dispatcher.statistics().workers == len(workers)
        yield srv, Rpc(client, "1.0")


def send(text: str, route: dict[str, Any] | None = None, *, on_request: bool = False,
         **config: Any) -> dict[str, Any]:
    """SendMessage params with routing metadata on the message (or the request)."""
    msg_extra = {"metadata": route} if route and not on_request else {}
    params: dict[str, Any] = {"message": user_message(text, **msg_extra)}
    if route and on_request:
        params["metadata"] = route
    if config:
        params["configuration"] = config
    return params


def ran_on(task: dict[str, Any]) -> str:
    """The WORKER/AGENT label the agent wrote, from a completed task."""
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    return task["artifacts"][0]["parts"][0]["text"]


async def run_task(rpc: Rpc, route: dict[str, Any], *, on_request: bool = False) -> str:
    result = await rpc.call("SendMessage", send("go", route, on_request=on_request))
    return ran_on(result["task"])


async def wait_completed(rpc: Rpc, task_id: str) -> dict[str, Any]:
    """Poll GetTask until the task completed (callers bound it with fail_after)."""
    while True:
        task = await rpc.call("GetTask", {"id": task_id})
        if task["status"]["state"] == "TASK_STATE_COMPLETED":
            return task
        assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING"), task
        await trio.sleep(0.02)


async def test_a_task_targeted_at_a_worker_by_name_or_id_always_runs_there() -> None:
    runs = Runs()
    with trio.fail_after(TIMEOUT):
        async with cluster(runs, ALPHA, BETA, GAMMA) as (_, rpc):
            by_name = [await run_task(rpc, {"trio-a2a/worker": "beta"}) for _ in range(6)]
            by_id = [await run_task(rpc, {"trio-a2a/worker": "id-alpha"}) for _ in range(4)]
            on_request = [await run_task(rpc, {"trio-a2a/worker": "gamma"}, on_request=True)
                          for _ in range(4)]
            # without a route the tasks go anywhere an agent fits; all three serve
            anywhere = {await run_task(rpc, {}) for _ in range(3)}
    assert by_name == ["beta/general"] * 6
    assert by_id == ["alpha/general"] * 4
    assert on_request == ["gamma/summarize"] * 4
    assert anywhere <= {"alpha/general", "beta/general", "gamma/summarize"}


async def test_targeting_an_agent_picks_a_worker_that_has_it_and_runs_that_agent() -> None:
    runs = Runs()
    with trio.fail_after(TIMEOUT):
        async with cluster(runs, ALPHA, BETA, GAMMA) as (_, rpc):
            translate = [await run_task(rpc, {"trio-a2a/agent": "translate"}) for _ in range(4)]
            summarize = [await run_task(rpc, {"trio-a2a/agent": "summarize"}, on_request=True)
                         for _ in range(4)]
            general = {await run_task(rpc, {"trio-a2a/agent": "general"}) for _ in range(6)}
            # a worker and an agent together: both must hold
            both = await run_task(rpc, {"trio-a2a/worker": "beta", "trio-a2a/agent": "translate"})
    assert translate == ["beta/translate"] * 4
    assert summarize == ["gamma/summarize"] * 4
    assert general <= {"alpha/general", "beta/general"}
    assert both == "beta/translate"


async def test_required_capabilities_pick_the_worker_that_has_all_of_them() -> None:
    runs = Runs()
    with trio.fail_after(TIMEOUT):
        async with cluster(runs, ALPHA, BETA, GAMMA) as (_, rpc):
            cpu_gpu = [await run_task(rpc, {"trio-a2a/capabilities": ["gpu", "cpu"]})
                       for _ in range(4)]
            gpu_mem = [await run_task(rpc, {"trio-a2a/capabilities": ["big-mem", "gpu"]},
                                      on_request=True) for _ in range(4)]
            one_string = await run_task(rpc, {"trio-a2a/capabilities": "big-mem"})
            gpu = {await run_task(rpc, {"trio-a2a/capabilities": ["gpu"]}) for _ in range(6)}
            gpu_general = await run_task(rpc, {"trio-a2a/capabilities": ["gpu"],
                                               "trio-a2a/agent": "general"})
    assert cpu_gpu == ["beta/general"] * 4
    assert gpu_mem == ["gamma/summarize"] * 4
    assert one_string == "gamma/summarize"
    assert gpu <= {"beta/general", "gamma/summarize"}
    assert gpu_general == "beta/general"


async def test_a_task_no_worker_can_run_stays_submitted_until_one_connects() -> None:
    runs = Runs()
    late = W("delta", ("general",), ("gpu", "tpu"), concurrency=1)
    with trio.fail_after(TIMEOUT):
        async with cluster(runs, ALPHA, BETA) as (srv, rpc):
            needs_tpu = (await rpc.call("SendMessage", send(
                "go", {"trio-a2a/capabilities": ["gpu", "tpu"]},
                returnImmediately=True)))["task"]
            for_delta = (await rpc.call("SendMessage", send(
                "go", {"trio-a2a/worker": "delta"}, on_request=True,
                returnImmediately=True)))["task"]
            # the connected workers go on serving what they can meanwhile
            assert await run_task(rpc, {"trio-a2a/capabilities": ["gpu"]}) == "beta/general"
            for task in (needs_tpu, for_delta):
                assert task["status"]["state"] == "TASK_STATE_SUBMITTED"
                now = await rpc.call("GetTask", {"id": task["id"]})
                assert now["status"]["state"] == "TASK_STATE_SUBMITTED"
                assert "artifacts" not in now or not now["artifacts"]
            assert srv.dispatcher.statistics().queued == 2
            assert runs.order([needs_tpu["id"], for_delta["id"]]) == []
            async with connect(srv, runs, late):
                done = [await wait_completed(rpc, t["id"]) for t in (needs_tpu, for_delta)]
    assert [ran_on(t) for t in done] == ["delta/general", "delta/general"]


async def test_with_all_workers_busy_higher_priority_runs_first() -> None:
    runs = Runs()
    one = W("one", concurrency=1)
    two = W("two", concurrency=1)
    with trio.fail_after(TIMEOUT):
        async with cluster(runs, one, two) as (srv, rpc):
            holds = {}
            for w in ("one", "two"):
                holds[w] = (await rpc.call("SendMessage", send(
                    f"hold {w}", {"trio-a2a/worker": w}, returnImmediately=True)))["task"]["id"]
                await runs.wait_started(holds[w])
            queued = {}
            for name, priority in (("low", 0), ("high", 9), ("mid", 3)):
                route = {"trio-a2a/priority": priority}
                queued[name] = (await rpc.call("SendMessage", send(
                    "go", route, on_request=name == "mid",
                    returnImmediately=True)))["task"]["id"]
            assert srv.dispatcher.statistics().queued == 3
            assert runs.order(list(queued.values())) == []  # both workers are held
            runs.gate("one").set()  # worker one frees; worker two stays busy throughout
            done = {n: await wait_completed(rpc, t) for n, t in queued.items()}
            order = runs.order([queued["low"], queued["high"], queued["mid"]])
            still_held = await rpc.call("GetTask", {"id": holds["two"]})
            runs.gate("two").set()
    assert order == [queued["high"], queued["mid"], queued["low"]]
    assert {ran_on(t) for t in done.values()} == {"one/general"}
    assert still_held["status"]["state"] == "TASK_STATE_WORKING"


async def test_three_local_workers_serve_tasks() -> None:
    runs = Runs()
    config = ServerConfig(port=0, store="memory", local_workers=3, max_concurrent_tasks=1,
                          agent=reporter(runs, "local"))
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as srv, \
                httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
            rpc = Rpc(client, "1.0")
            assert srv.dispatcher.statistics().workers == 3
            assert [w.name for w in srv.workers] == ["local-0", "local-1", "local-2"]
            # one held task per worker (each runs one at a time): all three run at once
            held = []
            for i in range(3):
                task = (await rpc.call("SendMessage", send(
                    f"hold h{i}", {"trio-a2a/worker": f"local-{i}"},
                    returnImmediately=True)))["task"]
                await runs.wait_started(task["id"])
                held.append(task["id"])
            running = [[w.is_running(t) for t in held] for w in srv.workers]
            for i in range(3):
                runs.gate(f"h{i}").set()
            done = [await wait_completed(rpc, t) for t in held]
            more = [await run_task(rpc, {}) for _ in range(3)]
            stats = srv.dispatcher.statistics()
    assert running == [[True, False, False], [False, True, False], [False, False, True]]
    assert [ran_on(t) for t in done] == ["local/general"] * 3
    assert more == ["local/general"] * 3
    assert stats.workers == 3 and stats.queued == 0 and stats.claims == 6
