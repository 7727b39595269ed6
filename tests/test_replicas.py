"""Two server replicas on one PostgreSQL database, in one trio program.

Replica A runs the tasks on its embedded worker; replica B has no worker and only
serves reads and streams. What B serves of a task A runs must be what A stored,
as soon as A stored it: B's task store follows A's commits through the change
feed (LISTEN/NOTIFY). The poll fallback is set to a minute here, so anything
faster than that was the notification's doing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from protocol.sse import SSEDecoder, SSEEvent
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message, wait_state

TIMEOUT = 30
BOUND = 5.0
"""Seconds B may take to show what A stored (the notification takes milliseconds)."""


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
            seen = await rpc_b.call("GetTask", {"id": task["id"]})  # now cached on B
            assert seen["status"]["state"] == "TASK_STATE_WORKING"
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
