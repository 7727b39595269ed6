"""A stopping server's client calls (runtime.http.grace): new requests get 503, a blocking
send and an SSE stream in flight get --shutdown-grace to finish; at its end the stream
ends with the final SSE comment and the blocking send answers with the task as it
stands, the task not failed. Real server on loopback, real HTTP clients, the scripted
agent waiting on its gate; the grace's timing on virtual time with the ASGI layer alone."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from actors.release import CallRelease
from runtime.http.grace import FINAL_FRAME, GracefulCalls
from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import user_message

V1 = {"Content-Type": "application/json", "A2A-Version": "1.0"}
V03 = {"Content-Type": "application/json"}


def _rpc(method: str, text: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": {"message": user_message(text)}})


def _rpc03(method: str, text: str) -> str:
    message = {"kind": "message", "messageId": f"m-{text}", "role": "user",
               "parts": [{"kind": "text", "text": text}]}
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": {"message": message}})


async def _draining(http: httpx.AsyncClient) -> None:
    """Until /readyz says the server drains, polled as a load balancer polls it."""
    while (await http.get("/readyz")).status_code != 503:  # noqa: ASYNC110
        await trio.sleep(0.01)


class Started(Controls):
    """The scripted agent's controls, with an event once `count` tasks have started."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.all_started = trio.Event()

    def mark_started(self, task_id: str) -> None:
        super().mark_started(task_id)
        if len(self.started) >= self.count:
            self.all_started.set()


class Calls:
    """The client calls of one test, each result kept for the assertions."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.opened: dict[str, trio.Event] = {}

    async def stream(self, http: httpx.AsyncClient, name: str, path: str, body: str,
                     headers: dict[str, str]) -> None:
        raw = b""
        opened = self.opened.setdefault(name, trio.Event())
        async with http.stream("POST", path, content=body, headers=headers) as response:
            async for chunk in response.aiter_bytes():
                raw += chunk
                opened.set()  # its first event (the task) has come
        self.results[name] = raw

    async def blocking(self, http: httpx.AsyncClient, name: str, path: str, body: str,
                       headers: dict[str, str]) -> None:
        self.results[name] = (await http.post(path, content=body, headers=headers)).json()


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[len(b"data: "):]) for line in raw.split(b"\n")
            if line.startswith(b"data: ")]


async def _run(grace: float, open_gate: bool, caplog: pytest.LogCaptureFixture
               ) -> tuple[Calls, httpx.Response, str]:
    controls = Started(5)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          shutdown_grace=grace, local_workers=1, max_concurrent_tasks=8)
    calls = Calls()
    caplog.set_level(logging.INFO, logger="runtime.server")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with open_server(config) as srv:
                http = httpx.AsyncClient(base_url=srv.url, timeout=30)
                nursery.start_soon(calls.stream, http, "stream", "/",
                                   _rpc("SendStreamingMessage", "wait"), V1)
                nursery.start_soon(calls.stream, http, "stream03", "/",
                                   _rpc03("message/stream", "wait"), V03)
                nursery.start_soon(calls.blocking, http, "blocking", "/",
                                   _rpc("SendMessage", "wait"), V1)
                nursery.start_soon(calls.blocking, http, "rest", "/message:send",
                                   json.dumps({"message": user_message("wait")}),
                                   {"Content-Type": "application/json"})
                submitted = (await http.post("/", headers=V1, content=json.dumps({
                    "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                    "params": {"message": user_message("wait"),
                               "configuration": {"returnImmediately": True}}}))).json()
                task_id = submitted["result"]["task"]["id"]
                await controls.all_started.wait()
                nursery.start_soon(calls.stream, http, "subscribe", "/", json.dumps({
                    "jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask",
                    "params": {"id": task_id}}), V1)
                nursery.start_soon(calls.stream, http, "rest_subscribe",
                                   f"/tasks/{task_id}:subscribe", "", {})
                for name in ("subscribe", "rest_subscribe"):
                    await calls.opened.setdefault(name, trio.Event()).wait()

                async def during_the_grace() -> None:
                    await _draining(http)
                    calls.results["refused"] = await http.post(
                        "/", content=_rpc("SendMessage", "echo hi"), headers=V1)
                    if open_gate:
                        controls.gate.set()
                nursery.start_soon(during_the_grace)
            await http.aclose()
    [stopped] = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("server stopped")]
    return calls, calls.results["refused"], stopped


async def test_calls_finish_within_the_grace_when_their_tasks_end(
        caplog: pytest.LogCaptureFixture) -> None:
    calls, refused, stopped = await _run(30.0, True, caplog)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "shutting down" in refused.json()["error"]["message"]
    for name in ("stream", "stream03", "subscribe", "rest_subscribe"):
        raw = calls.results[name]
        assert FINAL_FRAME not in raw
        last = _events(raw)[-1]
        last = last.get("result", last)  # HTTP+JSON: no JSON-RPC envelope
        status = last.get("statusUpdate", last).get("status")
        assert status["state"] in ("TASK_STATE_COMPLETED", "completed")
    assert calls.results["blocking"]["result"]["task"]["status"]["state"] == \
        "TASK_STATE_COMPLETED"
    assert calls.results["rest"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    # 2 blocking sends (a 3rd, answered before the stop, may still be closing)
    assert re.search(r"client calls in the grace: [23] request\(s\) and 4 stream\(s\) "
                     r"finished, 0 request\(s\) answered as the task stood, 0 stream\(s\) "
                     r"closed, 1 refused", stopped), stopped


async def test_at_the_end_of_the_grace_streams_close_and_blocking_sends_answer(
        caplog: pytest.LogCaptureFixture) -> None:
    calls, refused, stopped = await _run(0.5, False, caplog)
    assert refused.status_code == 503
    for name in ("stream", "stream03", "subscribe", "rest_subscribe"):
        raw = calls.results[name]
        assert raw.endswith(FINAL_FRAME), raw[-300:]
        assert all("error" not in event for event in _events(raw))  # the task is not failed
    # the task as it stood: working, not failed (it runs on elsewhere / after a restart)
    assert calls.results["blocking"]["result"]["task"]["status"]["state"] == \
        "TASK_STATE_WORKING"
    assert calls.results["rest"]["task"]["status"]["state"] == "TASK_STATE_WORKING"
    assert re.search(r"client calls in the grace: [01] request\(s\) and 0 stream\(s\) "
                     r"finished, 2 request\(s\) answered as the task stood, 4 stream\(s\) "
                     r"closed, 1 refused", stopped), stopped


async def test_the_grace_runs_out_on_virtual_time(autojump_clock: trio.testing.MockClock
                                                  ) -> None:
    """The grace's timing, the ASGI layer alone: calls that never end are released at
    exactly `grace`, and `stop` returns at once when none are in flight."""
    release = CallRelease()
    entered = trio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        entered.set()
        with release.hold():
            await trio.sleep_forever()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"as it stands"})

    calls = GracefulCalls(app, release)
    sent: list[dict[str, Any]] = []

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(calls, {"type": "http", "path": "/"}, None, record)
        await entered.wait()
        start = trio.current_time()
        counts = await calls.stop(20.0)
        assert trio.current_time() - start == 20.0
    assert counts["requests_answered"] == 1 and sent[-1]["body"] == b"as it stands"
    idle = GracefulCalls(app, CallRelease())
    start = trio.current_time()
    await idle.stop(20.0)
    assert trio.current_time() == start


async def test_a_second_signal_cuts_the_grace_short(autojump_clock: trio.testing.MockClock
                                                   ) -> None:
    """`hurry()` (the CLI's second SIGTERM) lets go of the calls at once, mid-grace."""
    release = CallRelease()
    entered = trio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        entered.set()
        with release.hold():
            await trio.sleep_forever()

    calls = GracefulCalls(app, release)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(calls, {"type": "http", "path": "/message:send"}, None, None)
        await entered.wait()
        start = trio.current_time()

        async def second_signal() -> None:
            await trio.sleep(3)
            calls.hurry()
        nursery.start_soon(second_signal)
        counts = await calls.stop(20.0)
        assert trio.current_time() - start == 3.0 and counts["requests_answered"] == 1
    assert release.released
