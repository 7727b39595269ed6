"""SIGTERM, as a process manager sends it: `python -m runtime worker` lets a short task
finish within --shutdown-grace and gives a long one back, which the server queues
again at once (the lease is 90 s); each process logs one line when it stops."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import user_message
from tests.e2e.procs import Proc, logged, open_processes, server_url

TIMEOUT = 60


def _said(proc: Proc, start: str) -> list[dict[str, Any]]:
    return [r for r in proc.records if str(r.get("msg", "")).startswith(start)]


async def _send(http: httpx.AsyncClient, url: str, text: str) -> str:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message(text),
                       "configuration": {"returnImmediately": True}}}
    reply = await http.post(url, content=json.dumps(body),
                            headers={"Content-Type": "application/json", "A2A-Version": "1.0"})
    return str(reply.json()["result"]["task"]["id"])


async def _task(http: httpx.AsyncClient, url: str, task_id: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
    reply = await http.post(url, content=json.dumps(body),
                            headers={"Content-Type": "application/json", "A2A-Version": "1.0"})
    return dict(reply.json()["result"])


async def test_sigterm_stops_a_worker_and_a_server_gracefully(tmp_path: Path) -> None:
    logs = ["--log-format", "json"]
    with trio.fail_after(TIMEOUT):
        async with open_processes() as start, httpx.AsyncClient(timeout=10) as http:
            server = await start("server", [
                "-m", "runtime", "server", "--port", "0", "--store", "sqlite",
                "--data-dir", str(tmp_path), "--local-workers", "0", *logs])
            url = await server.wait_for(server_url, "listening line")
            worker = await start("worker", [
                "-m", "runtime", "worker", "--server", url, "--agent",
                "tests.e2e.agents:counter", "--concurrency", "2", "--shutdown-grace", "5",
                *logs])
            await server.wait_for(lambda p: logged(p, "worker registered"), "registration")
            short, long = await _send(http, url, "2"), await _send(http, url, "1000")
            await worker.wait_for(lambda p: len(logged(p, "session started")) == 2, "sessions")
            worker.process.send_signal(signal.SIGTERM)
            assert await worker.process.wait() == 0, "\n".join(worker.stderr[-30:])
            await worker.wait_for(lambda p: _said(p, "worker stopped"), "its last line")
            done, given_back = await _task(http, url, short), await _task(http, url, long)
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0, "\n".join(server.stderr[-30:])
            await server.wait_for(lambda p: _said(p, "server stopped"), "its last line")
    stopped = _said(worker, "worker stopped")
    assert len(stopped) == 1, stopped
    assert "1 task(s) ended, 1 given back, 0 cut off" in stopped[0]["msg"]
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    # given back, and queued again at once: not waiting for its 90 s lease
    assert given_back["status"]["state"] == "TASK_STATE_WORKING"
    note = given_back["status"]["message"]["parts"][0]["text"]
    assert "gave the task back (it is stopping); retrying (attempt 1 of 3)" in note
    [last] = _said(server, "server stopped")
    # (a GetTask whose response was sent may still be counted as finishing in the grace)
    assert last["msg"].startswith("server stopped, handed over: 0 task(s) queued again, "
                                  "0 worker(s) moved; client calls in the grace: ")
    assert last["msg"].endswith("0 stream(s) finished, 0 request(s) answered as the task "
                                "stood, 0 stream(s) closed, 0 refused")
