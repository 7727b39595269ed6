"""The official a2a-sdk 1.3 client against a live trio-a2a server, in both generations.

The SDK is asyncio-only, so each scenario runs `sdk_client_script.py` in a
subprocess against a server opened in this (trio) test, and asserts on the JSON
report the script prints. Where a scenario needs the server to move on at a
given point (a subscription is open, push configs are in place) the script
prints a progress line and the test acts on it (opens the scripted agent's gate).

Modes: "1.0" lets the SDK discover the card and pick the 1.0 interface; "0.3"
hands it the card as a 0.3-only client reads it (legacy top-level fields only),
so it talks through its 0.3 compat transports (`A2A-Version: 0.3`, `message/send`,
`/v1/...`). Each mode runs over JSON-RPC and HTTP+JSON.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from a2a.types import StreamResponse
from google.protobuf.json_format import Parse
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent

pytestmark = pytest.mark.interop

SCRIPT = Path(__file__).with_name("sdk_client_script.py")
REPO = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT = 30
TEST_TIMEOUT = 40


def _placeholder(rel: str) -> bool:
    return "placeholder" in (REPO / rel).read_text()


REST_SKIP = pytest.mark.skipif(
    _placeholder("runtime/http/rest.py"),
    reason="runtime/http/rest.py is still a placeholder: the HTTP+JSON binding is not wired",
)
PUSH_DELIVERY_READY = not _placeholder("actors/push_delivery.py")

MODES = [
    pytest.param("1.0", "JSONRPC", id="v1.0-jsonrpc"),
    pytest.param("1.0", "HTTP+JSON", id="v1.0-rest", marks=REST_SKIP),
    pytest.param("0.3", "JSONRPC", id="v0.3-jsonrpc"),
    pytest.param("0.3", "HTTP+JSON", id="v0.3-rest", marks=REST_SKIP),
]
TRANSPORTS = {
    ("1.0", "JSONRPC"): "JsonRpcTransport",
    ("1.0", "HTTP+JSON"): "RestTransport",
    ("0.3", "JSONRPC"): "CompatJsonRpcTransport",
    ("0.3", "HTTP+JSON"): "CompatRestTransport",
}
TEXT = "hello interop"


def server_config(controls: Controls | None = None) -> ServerConfig:
    if controls is None:  # the built-in echo agent, as `python -m runtime server` runs it
        return ServerConfig(port=0, store="memory", allow_private_push_urls=True)
    return ServerConfig(port=0, store="memory", allow_private_push_urls=True,
                        agent=scripted_agent(controls))


# --- running the SDK client -----------------------------------------------------------

Progress = Callable[[dict[str, Any]], Awaitable[None]]


async def _drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    async for chunk in stream:
        into += chunk


async def run_sdk(url: str, mode: str, binding: str, scenario: str, arg: str = "",
                  on_progress: Progress | None = None) -> dict[str, Any]:
    """Run one scenario of the SDK client; the report it printed."""
    cmd = [sys.executable, str(SCRIPT), url, mode, binding, scenario, arg]
    report: dict[str, Any] | None = None
    stderr = bytearray()
    with trio.fail_after(SCRIPT_TIMEOUT):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(partial(
                trio.run_process, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                check=False))
            nursery.start_soon(_drain, proc.stderr, stderr)
            buf = b""
            async for chunk in proc.stdout:
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if "progress" in msg:
                        if on_progress is not None:
                            await on_progress(msg)
                    elif "report" in msg:
                        report = msg["report"]
    assert proc.returncode == 0, stderr.decode(errors="replace")
    assert report is not None, stderr.decode(errors="replace")
    assert "fatal" not in report, report
    assert report.get("transport", TRANSPORTS[mode, binding]) == TRANSPORTS[mode, binding], report
    return report


def no_error(value: Any) -> Any:
    assert not (isinstance(value, dict) and "error" in value), value
    return value


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("kind") or f"error:{e.get('error')}" for e in events]


# --- a webhook receiver ---------------------------------------------------------------


@attrs.define
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@attrs.define
class Receiver:
    """Records every POST; answers 200."""

    url: str = ""
    posts: list[Post] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def at(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]

    async def wait_for(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._changed.wait()

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.posts.append(Post(path=scope["path"], headers=headers, body=body))
        self._changed.set()
        self._changed = trio.Event()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def open_receiver() -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    receiver = Receiver(url=f"http://127.0.0.1:{sock.getsockname()[1]}/hook")
    hc = HyperConfig()
    hc.accesslog = None
    hc.graceful_timeout = 0
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker_serve(
                wrap_app(receiver.app, hc.wsgi_max_body_size, "asgi"), hc, sockets=sockets,
                task_status=task_status))
            yield receiver
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


# --- scenarios ------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_card_discovery(mode: str, binding: str) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(server_config()) as srv:
            report = await run_sdk(srv.url, mode, binding, "card")
    card = report["card"]
    assert card["name"] == "echo"
    assert card["streaming"] is True
    assert card["push_notifications"] is True
    assert card["extended_agent_card"] is False
    assert card["skills"] == ["echo"]
    interfaces = {(b, v) for b, v, _ in card["interfaces"]}
    if mode == "1.0":
        assert interfaces == {("JSONRPC", "1.0"), ("HTTP+JSON", "1.0"),
                              ("JSONRPC", "0.3"), ("HTTP+JSON", "0.3")}
    else:  # derived by the SDK from the legacy url/preferredTransport/additionalInterfaces
        assert interfaces == {("JSONRPC", "0.3.0"), ("HTTP+JSON", "0.3.0")}
    # JSON-RPC posts to "/"; the HTTP+JSON transports append their paths to the base URL.
    assert report["transport_url"] == (srv.url + "/" if binding == "JSONRPC" else srv.url)


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_blocking_send(mode: str, binding: str) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(server_config()) as srv:
            report = await run_sdk(srv.url, mode, binding, "blocking", TEXT)
    events = report["events"]
    assert kinds(events) == ["task"], events
    task = events[0]
    assert task["state"] == "TASK_STATE_COMPLETED"
    assert task["artifact_text"] == TEXT
    assert task["artifacts"] == 1


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_streaming_send_get_list(mode: str, binding: str) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(server_config()) as srv:
            report = await run_sdk(srv.url, mode, binding, "streaming", TEXT)
    events = report["events"]
    assert kinds(events) == ["task", "status_update", "artifact_update", "artifact_update",
                             "artifact_update", "status_update"], events
    task_id = events[0]["id"]
    assert {e.get("task_id", e.get("id")) for e in events} == {task_id}
    assert events[0]["state"] == "TASK_STATE_SUBMITTED"
    assert events[1]["state"] == "TASK_STATE_WORKING"
    chunks = events[2:5]
    assert "".join(c["text"] for c in chunks) == TEXT
    assert [c["append"] for c in chunks] == [False, True, True]
    assert [c["last_chunk"] for c in chunks] == [False, False, True]
    assert len({c["artifact_id"] for c in chunks}) == 1
    assert events[5]["state"] == "TASK_STATE_COMPLETED"

    got = no_error(report["get"])
    assert (got["id"], got["state"], got["artifact_text"]) == (
        task_id, "TASK_STATE_COMPLETED", TEXT)
    assert got["history"] == 1
    if mode == "1.0":
        assert no_error(report["get_history0"])["history"] == 0
    assert report["get_unknown"]["error"] == "TaskNotFoundError"

    if mode == "0.3":
        # The SDK's 0.3 transports have no tasks/list (the 0.3 spec has none in JSON-RPC;
        # our server's 0.3 `tasks/list` extension is not reachable through this client).
        assert report["list"]["error"] == "NotImplementedError", report["list"]
        return
    listing = no_error(report["list"])
    assert [t["id"] for t in listing["tasks"]] == [task_id]
    assert listing["tasks"][0]["state"] == "TASK_STATE_COMPLETED"
    assert listing["tasks"][0]["artifact_text"] == TEXT
    assert listing["next_page_token"] == ""
    assert listing["total_size"] == 1


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_cancel(mode: str, binding: str) -> None:
    controls = Controls()
    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(server_config(controls)) as srv:
            report = await run_sdk(srv.url, mode, binding, "cancel")
            assert not srv.workers[0].is_running(report["events"][0]["id"])
    events = report["events"]
    task_id = events[0]["id"]
    assert controls.cancelled == [task_id]
    canceled = no_error(report["cancel"])
    assert (canceled["id"], canceled["state"]) == (task_id, "TASK_STATE_CANCELED")
    # The open stream sees the cancellation and then closes.
    assert kinds(events)[0] == "task"
    assert kinds(events)[-1] == "status_update", events
    assert events[-1]["state"] == "TASK_STATE_CANCELED"
    assert set(kinds(events)) == {"task", "status_update"}
    assert no_error(report["get"])["state"] == "TASK_STATE_CANCELED"
    assert report["cancel_again"]["error"] == "TaskNotCancelableError"


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_subscribe(mode: str, binding: str) -> None:
    controls = Controls()
    seen: list[str] = []

    async def on_progress(msg: dict[str, Any]) -> None:
        if msg["progress"] == "subscribed":
            seen.append(msg["task_id"])
            controls.gate.set()

    with trio.fail_after(TEST_TIMEOUT):
        async with open_server(server_config(controls)) as srv:
            report = await run_sdk(srv.url, mode, binding, "subscribe", on_progress=on_progress)
    sent = report["sent"]
    assert kinds(sent) == ["task"]
    task_id = sent[0]["id"]
    assert sent[0]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    assert seen == [task_id]
    events = report["events"]
    assert kinds(events)[0] == "task", events
    assert events[0]["id"] == task_id
    assert events[0]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    assert kinds(events)[-1] == "status_update", events
    assert events[-1]["state"] == "TASK_STATE_COMPLETED"
    assert events[-1]["status_text"] == "gate opened"
    assert no_error(report["get"])["state"] == "TASK_STATE_COMPLETED"
    # Subscribing to a task that has ended is refused with UnsupportedOperationError (-32004).
    again = report["subscribe_terminal"]
    assert len(again) == 1 and again[0].get("error"), again
    assert again[0]["error"] == "UnsupportedOperationError", again


@pytest.mark.parametrize(("mode", "binding"), MODES)
async def test_push_configs_and_delivery(mode: str, binding: str) -> None:
    controls = Controls()

    async def on_progress(msg: dict[str, Any]) -> None:
        if msg["progress"] == "push_ready":
            controls.gate.set()

    with trio.fail_after(TEST_TIMEOUT):
        async with open_receiver() as hook, open_server(server_config(controls)) as srv:
            report = await run_sdk(srv.url, mode, binding, "push", hook.url,
                                   on_progress=on_progress)
            task_id = report["sent"][0]["id"]

            def completed(path: str) -> bool:
                return any(p.event().get("statusUpdate", {}).get("status", {}).get("state")
                           == "TASK_STATE_COMPLETED" for p in hook.at(path))

            if PUSH_DELIVERY_READY:
                with trio.fail_after(10):
                    await hook.wait_for(lambda: completed("/hook/send")
                                        and completed("/hook/cfg-b"))

    # --- CRUD as the SDK sees it
    assert kinds(report["sent"]) == ["task"]
    if (mode, binding) == ("0.3", "HTTP+JSON"):
        # SDK gap, not ours: CompatRestTransport has no list/delete (the script then
        # calls GET/DELETE /v1/tasks/{id}/pushNotificationConfigs[/{configId}] itself).
        assert report["sdk_list"]["error"] == "NotImplementedError", report["sdk_list"]
        assert report["sdk_delete"]["error"] == "NotImplementedError", report["sdk_delete"]
    b = no_error(report["create_b"])
    want_b = {"id": "cfg-b", "task_id": task_id, "url": hook.url + "/cfg-b", "token": "tok-b",
              "scheme": "Bearer", "credentials": "secret-b"}
    assert b == want_b
    assert no_error(report["get_b"]) == want_b
    assert no_error(report["create_c"])["id"] == "cfg-c"
    listed = no_error(report["list_3"])
    assert [c["id"] for c in listed] == sorted([task_id, "cfg-b", "cfg-c"])
    send_cfg = next(c for c in listed if c["url"] == hook.url + "/send")
    assert send_cfg["token"] == "tok-send"
    assert report["delete_c"] == "ok"
    assert [c["id"] for c in no_error(report["list_2"])] == sorted([task_id, "cfg-b"])
    assert report["get_deleted"]["error"] == "TaskNotFoundError", report["get_deleted"]
    assert no_error(report["final"])["state"] == "TASK_STATE_COMPLETED"

    # --- delivery
    if not PUSH_DELIVERY_READY:
        pytest.skip("actors/push_delivery.py is still a placeholder: delivery not asserted")
    for path, token, auth in (("/hook/send", "tok-send", None),
                              ("/hook/cfg-b", "tok-b", "Bearer secret-b")):
        posts = hook.at(path)
        for p in posts:
            assert p.headers["content-type"].startswith("application/json")
            assert p.headers["x-a2a-notification-token"] == token
            assert p.headers.get("authorization") == auth
            ev = Parse(p.body, StreamResponse())  # the SDK's own StreamResponse reads it
            payload = ev.WhichOneof("payload")
            assert payload in ("task", "status_update", "artifact_update"), p.body
            inner = getattr(ev, payload)
            assert (inner.id if payload == "task" else inner.task_id) == task_id
        states = [p.event()["statusUpdate"]["status"]["state"] for p in posts
                  if "statusUpdate" in p.event()]
        assert states[-1] == "TASK_STATE_COMPLETED", states
        assert states.count("TASK_STATE_COMPLETED") == 1, states
    # cfg-c was deleted before the gate opened: it never hears of the completion.
    assert not completed("/hook/cfg-c")
