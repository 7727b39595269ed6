"""The dashboard's streams over HTTP: snapshots, and one task's events as they are
committed, ending with the task."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from protocol.sse import SSEDecoder
from runtime.server import RunningServer
from tests.admin.helpers import TOKEN
from tests.admin.test_admin_api import send, worker
from tests.agents import Controls
from tests.conftest import wait_state

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def read_events(http: httpx.AsyncClient, path: str, *, until: str,
                      headers: dict[str, str] = AUTH) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of an SSE response, through the first event named `until`."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with http.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        dec = SSEDecoder()
        async for chunk in r.aiter_bytes():
            for ev in dec.feed(chunk):
                out.append((ev.event or "message", json.loads(ev.data)))
                if ev.event == until:
                    return out
    return out


async def test_snapshot_holds_workers_queue_leases_tasks_and_throughput(
        admin_server: RunningServer, http: httpx.AsyncClient, controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            done = await send(http, "echo hi")
            await wait_state(admin_server, done, "TASK_STATE_COMPLETED")
            running = await send(http, "wait")
            await controls.wait_started(running)
            ((name, snap),) = await read_events(http, "/admin/v1/stream", until="snapshot")
            controls.gate.set()
    assert name == "snapshot"
    assert [w["workerId"] for w in snap["workers"]] == ["w1"]
    assert snap["queue"] == [] and [t["id"] for t in snap["leases"]] == [running]
    assert {t["id"] for t in snap["tasks"]} == {done, running}
    # the first look fills the window from the store: the completed task is counted
    assert len(snap["throughput"]) == 300
    assert sum(p["completed"] for p in snap["throughput"]) == pytest.approx(1.0)


async def test_task_events_stream_as_committed_and_end_with_the_task(
        admin_server: RunningServer, http: httpx.AsyncClient, controls: Controls) -> None:
    with trio.fail_after(20):
        async with worker(admin_server, controls, "w1"):
            task_id = await send(http, "gated 2")
            await controls.wait_started(task_id)
            async with trio.open_nursery() as nursery:
                got: list[tuple[str, dict[str, Any]]] = []

                async def follow() -> None:
                    got.extend(await read_events(
                        http, f"/admin/v1/tasks/{task_id}/events", until="end"))

                nursery.start_soon(follow)
                await admin_server.store.wait_record(task_id, lambda r: r.seq >= 4)
                controls.gate.set()
            missing = await http.get("/admin/v1/tasks/nope/events", headers=AUTH)
            refused = await http.get(f"/admin/v1/tasks/{task_id}/events")
    kinds = [name for name, _ in got]
    assert kinds[-1] == "end" and set(kinds[:-1]) == {"event"}
    seqs = [data["seq"] for name, data in got if name == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    states = [d["event"]["statusUpdate"]["status"]["state"] for n, d in got
              if n == "event" and "statusUpdate" in d["event"]]
    assert states[0] == "TASK_STATE_WORKING" and states[-1] == "TASK_STATE_COMPLETED"
    chunks = [d["event"]["artifactUpdate"]["artifact"]["parts"][0]["text"] for n, d in got
              if n == "event" and "artifactUpdate" in d["event"]]
    assert chunks == ["c0", "c1", "c2", "c3"]
    assert missing.status_code == 404 and "'nope'" in missing.json()["error"]["message"]
    assert refused.status_code == 401
