"""SIGTERM to a real `python -m runtime server` with client calls in flight: a new
request gets 503 meanwhile; at the end of --shutdown-grace (a second SIGTERM ends it
here) an SSE stream whose task
still runs ends with the final SSE comment (resumable: its frames carry ids) and a
blocking SendMessage answers with the task as it stands, not an error; the server
exits 0 and its last line counts them. The tasks run on a worker process, which the
server tells to move on (`goaway`) after the grace."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import trio

from runtime.http.grace import FINAL_FRAME
from tests.conftest import user_message
from tests.e2e.procs import Proc, open_processes, server_url

TIMEOUT = 90
V1 = {"Content-Type": "application/json", "A2A-Version": "1.0"}


def _body(method: str, text: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": {"message": user_message(text)}})


def _attempts(proc: Proc) -> int:
    return len([r for r in proc.records if r.get("msg") == "counter attempt"])


async def test_sigterm_closes_streams_and_answers_blocking_sends(tmp_path: Path) -> None:
    results: dict[str, Any] = {}

    async def stream(http: httpx.AsyncClient, url: str) -> None:
        raw = b""
        async with http.stream("POST", url, content=_body("SendStreamingMessage", "1000"),
                               headers=V1) as response:
            async for chunk in response.aiter_bytes():
                raw += chunk
        results["stream"] = raw

    async def blocking(http: httpx.AsyncClient, url: str) -> None:
        reply = await http.post(url, content=_body("SendMessage", "1000"), headers=V1)
        results["blocking"] = reply.json()

    with trio.fail_after(TIMEOUT):
        async with open_processes() as start, httpx.AsyncClient(timeout=30) as http, \
                trio.open_nursery() as nursery:
            server = await start("server", [
                "-m", "runtime", "server", "--port", "0", "--store", "sqlite",
                "--data-dir", str(tmp_path), "--local-workers", "0",
                "--shutdown-grace", "600", "--log-format", "json"])
            url = await server.wait_for(server_url, "listening line")
            worker = await start("worker", [
                "-m", "runtime", "worker", "--server", url, "--agent",
                "tests.e2e.agents:counter", "--concurrency", "2", "--log-format", "json"])
            nursery.start_soon(stream, http, url)
            nursery.start_soon(blocking, http, url)
            await worker.wait_for(lambda p: _attempts(p) == 2, "both tasks running")
            server.process.send_signal(signal.SIGTERM)
            while (await http.get(url + "/readyz")).status_code != 503:  # noqa: ASYNC110
                await trio.sleep(0.02)
            refused = await http.post(url, content=_body("SendMessage", "1"), headers=V1)
            # the grace (600 s) would outlast the test: a second signal cuts it short
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0, "\n".join(server.stderr[-30:])
            [last] = await server.wait_for(
                lambda p: [r for r in p.records if r["msg"].startswith("server stopped")],
                "its last line")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    raw = results["stream"]
    assert raw.endswith(FINAL_FRAME) and raw.startswith(b"id: "), raw[-300:]  # resumable
    task = results["blocking"]["result"]["task"]
    # as it stood (the worker's first status may not have reached the server): not failed
    assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    assert last["msg"].endswith(
        "1 worker(s) moved; client calls in the grace: 0 request(s) and 0 stream(s) "
        "finished, 1 request(s) answered as the task stood, 1 stream(s) closed, "
        "1 refused"), last["msg"]
