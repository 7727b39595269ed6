"""Restart on the same SQLite data dir: every acknowledged task and event is served again."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio

from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, results, user_message, wait_state


def config(data_dir: Path, controls: Controls) -> ServerConfig:
    # the default (long) lease: a task its embedded worker was running when the server
    # stopped is queued again as the server stops (gracefully), without waiting the
    # lease out, and runs when it starts again
    return ServerConfig(port=0, store="sqlite", data_dir=data_dir, agent=scripted_agent(controls),
                        allow_private_push_urls=True)


async def test_restart_serves_tasks_and_events(tmp_path: Path) -> None:
    controls = Controls()
    with trio.fail_after(30):
        async with open_server(config(tmp_path, controls)) as srv, \
                httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            done_events = await rpc.stream("SendStreamingMessage",
                                           {"message": user_message("chunks 4")})
            done = results(done_events)[0]["task"]["id"]
            asked = (await rpc.call("SendMessage", {"message": user_message("ask")}))["task"]
            running = (await rpc.call("SendMessage", {"message": user_message("wait"),
                                                      "configuration": {"returnImmediately": True}}
                                      ))["task"]
            await controls.wait_started(running["id"])
            await wait_state(srv, running["id"], "TASK_STATE_WORKING")
            before = {t["id"]: t for t in (await rpc.call("ListTasks", {"includeArtifacts": True}
                                                          ))["tasks"]}
        assert (tmp_path / "tasks.sqlite3").exists()

        controls2 = Controls()
        async with open_server(config(tmp_path, controls2)) as srv, \
                httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            after = {t["id"]: t for t in (await rpc.call("ListTasks", {"includeArtifacts": True}
                                                         ))["tasks"]}
            assert set(after) == set(before)
            assert after[done] == before[done]
            assert before[running["id"]]["status"]["state"] == "TASK_STATE_WORKING"
            assert after[asked["id"]] == before[asked["id"]]
            # the task cut off mid-run is retried at once, and finishes; a graceful stop
            # does not count the attempt it cut off
            await controls2.wait_started(running["id"])
            controls2.gate.set()
            await wait_state(srv, running["id"], "TASK_STATE_COMPLETED")
            replayed = results(await rpc.stream("SubscribeToTask", {"id": running["id"]},
                                                headers={"Last-Event-ID": "0"}))
            notes = [r["statusUpdate"]["status"].get("message", {}).get("parts", [{}])[0]
                     .get("text", "") for r in replayed if "statusUpdate" in r]
            assert any("stopped with the server; retrying (attempt 1 of 3)" in n
                       for n in notes), notes
            assert replayed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
            # the full event log replays from Last-Event-ID 0, identical
            replay = await rpc.stream("SubscribeToTask", {"id": done},
                                      headers={"Last-Event-ID": "0"})
            assert [e.id for e in replay] == [e.id for e in done_events]
            assert [json.loads(e.data)["result"] for e in replay] == results(done_events)
            # the interrupted task can still be continued
            cont = await rpc.call("SendMessage", {"message": user_message(
                "ask Grace", taskId=asked["id"])})
            assert cont["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_submitted_tasks_are_requeued_after_restart(tmp_path: Path) -> None:
    """A task accepted but not started before the stop runs after the restart."""
    controls = Controls()
    with trio.fail_after(30):
        cfg = attrs_evolve(config(tmp_path, controls), max_concurrent_tasks=1)
        async with open_server(cfg) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            blocker = (await rpc.call("SendMessage", {"message": user_message("wait"),
                                                      "configuration": {"returnImmediately": True}}
                                      ))["task"]
            queued = (await rpc.call("SendMessage", {"message": user_message("echo later"),
                                                     "configuration": {"returnImmediately": True}}
                                     ))["task"]
            await controls.wait_started(blocker["id"])
            assert (await rpc.call("GetTask", {"id": queued["id"]}))["status"]["state"] == \
                "TASK_STATE_SUBMITTED"
        async with open_server(config(tmp_path, Controls())) as srv, \
                httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            await wait_state(srv, queued["id"], "TASK_STATE_COMPLETED")
            task = await rpc.call("GetTask", {"id": queued["id"]})
            assert task["artifacts"][0]["parts"][0]["text"].startswith("echo")


def attrs_evolve(cfg: ServerConfig, **changes: object) -> ServerConfig:
    import attrs

    return attrs.evolve(cfg, **changes)
