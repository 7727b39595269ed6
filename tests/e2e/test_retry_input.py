"""A worker process SIGKILLed mid-task: the retry runs on the user's input.

Real processes on loopback: `python -m runtime server` (SQLite file, no local
workers, a short lease) and `python -m runtime worker` processes running
`tests.e2e.agents:counter`, which says "thinking..." and "step i/n" as it works
and parses the user's text as n. Worker A is killed once the task has reported
its second step (so those statuses are in the task's history); worker B, started
after, runs the retry. The retry must be given the user's "6", not "step 2/6"
(`int()` of which fails the task), nor the server's retry note.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import Rpc, user_message
from tests.e2e.procs import Proc, logged, open_processes, server_url

pytestmark = [pytest.mark.slow]

LEASE_TTL = 2.0
REAP_INTERVAL = 0.25


def _inputs(proc: Proc) -> list[tuple[str, int]]:
    return [(r["input"], r["history_len"]) for r in logged(proc, "counter attempt")]


async def _poll_task(rpc: Rpc, task_id: str, done: Callable[[dict[str, Any]], bool]
                     ) -> dict[str, Any]:
    """GetTask until `done(task)` (another process's store: nothing to wait on here)."""
    while not done(task := await rpc.call("GetTask", {"id": task_id})):  # noqa: ASYNC110
        await trio.sleep(0.02)
    return task


def _status_text(task: dict[str, Any]) -> str:
    parts = task["status"].get("message", {}).get("parts", [{}])
    return str(parts[0].get("text", ""))


async def test_a_killed_workers_task_is_retried_on_the_users_input(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_processes() as start:
            server = await start("server", [
                "-m", "runtime", "server", "--port", "0", "--store", "sqlite",
                "--data-dir", str(tmp_path), "--local-workers", "0",
                "--lease-ttl", str(LEASE_TTL), "--reap-interval", str(REAP_INTERVAL),
                "--log-format", "json"])
            url = await server.wait_for(server_url, "listening line")
            worker = ["-m", "runtime", "worker", "--server", url, "--agent",
                      "tests.e2e.agents:counter", "--log-format", "json"]
            a = await start("worker-a", [*worker, "--name", "a"])
            await server.wait_for(lambda p: logged(p, "worker registered"), "registration")
            async with httpx.AsyncClient(base_url=url) as c:
                rpc = Rpc(c, "1.0")
                task_id = (await rpc.call("SendMessage", {
                    "message": user_message("6"),
                    "configuration": {"returnImmediately": True}}))["task"]["id"]
                await _poll_task(rpc, task_id, lambda t: _status_text(t) == "step 2/6")
                a.process.kill()
                await a.process.wait()
                b = await start("worker-b", [*worker, "--name", "b"])
                task = await _poll_task(rpc, task_id, lambda t: t["status"]["state"] in (
                    "TASK_STATE_COMPLETED", "TASK_STATE_FAILED"))
            history = [m["parts"][0]["text"] for m in task["history"]]
            assert (_inputs(a), _inputs(b)) == ([("6", 0)], [("6", 0)]), history
            assert task["status"]["state"] == "TASK_STATE_COMPLETED", _status_text(task)
            assert [x["parts"][0]["text"] for x in task["artifacts"]] == ["counted to 6"]
            assert history[:4] == ["6", "thinking...", "step 1/6", "step 2/6"]
            assert any("expired; retrying (attempt 2 of 3)" in h for h in history), history
