"""The official a2a-sdk 1.3 client over its gRPC transport, against a live server.

The SDK is asyncio-only, so each scenario runs `sdk_grpc_script.py` in a subprocess
against a server opened in this (trio) test, and asserts on the JSON report it
prints; where the server must move on at a point (a subscription is open, a stream
was dropped) the script prints a progress line and the test acts on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from protocol.models import ListTasksRequest
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent

pytestmark = pytest.mark.interop

SCRIPT = Path(__file__).with_name("sdk_grpc_script.py")
SCRIPT_TIMEOUT = 40

Progress = Callable[[dict[str, Any]], Awaitable[None]]


def config(controls: Controls, **kw: Any) -> ServerConfig:
    return ServerConfig(port=0, store="memory", grpc_port=0, allow_private_push_urls=True,
                        agent=scripted_agent(controls), **kw)


async def _drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    async for chunk in stream:
        into += chunk


async def run_script(server: RunningServer, scenario: str, *args: str,
                     on_progress: Progress | None = None,
                     env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(SCRIPT), server.url, scenario, *args]
    report: dict[str, Any] | None = None
    stderr = bytearray()
    with trio.fail_after(SCRIPT_TIMEOUT):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(partial(
                trio.run_process, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                check=False, env={**os.environ, **(env or {})}))
            nursery.start_soon(_drain, proc.stderr, stderr)
            buf = b""
            async for chunk in proc.stdout:
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if "progress" in msg and on_progress is not None:
                        await on_progress(msg)
                    elif "report" in msg:
                        report = msg["report"]
    assert proc.returncode == 0, stderr.decode(errors="replace")
    assert report is not None, stderr.decode(errors="replace")
    assert "fatal" not in report, report
    return report


def ok(value: Any) -> Any:
    assert not (isinstance(value, dict) and "error" in value), value
    return value


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("kind") or f"error:{e.get('error')}" for e in events]


async def test_every_method_over_grpc() -> None:
    controls = Controls()
    async with open_server(config(controls)) as server:
        report = await run_script(server, "methods")
        # the card names the gRPC interface, and the SDK chose it
        assert report["transport"] == "GrpcTransport"
        assert ["GRPC", "1.0", server.grpc.url] in report["interfaces"]
        send = report["send"]
        assert kinds(send) == ["task"]
        assert send[0]["state"] == "TASK_STATE_COMPLETED"
        assert send[0]["artifact_text"] == "echo hello grpc"
        assert report["reply"] == [{"kind": "message", "text": "direct: hi",
                                    "role": "ROLE_AGENT"}]
        stream = report["stream"]
        assert kinds(stream) == ["task", "status_update", "artifact_update",
                                 "artifact_update", "artifact_update", "status_update"]
        assert [e.get("text") for e in stream[2:5]] == ["c0", "c1", "c2"]
        assert stream[-1]["state"] == "TASK_STATE_COMPLETED"
        get = ok(report["get"])
        assert get["id"] == send[0]["id"] and get["history"] == 1
        listed = ok(report["list"])
        assert len(listed["ids"]) == 2 and listed["total"] == 3 and listed["next"]
        # errors: the SDK rebuilds the typed error from the ErrorInfo detail
        assert report["get_unknown"]["error"] == "TaskNotFoundError"
        assert "no-such-task" in report["get_unknown"]["message"]
        assert report["cancel_done"]["error"] == "TaskNotCancelableError"
        assert kinds(report["subscribe_terminal"]) == ["error:UnsupportedOperationError"]
        # no auth: no extended card; the SDK then answers with the public card itself
        assert ok(report["extended_card"])["name"] == "scripted"
        # push config CRUD
        a = ok(report["push_create_a"])
        assert a["id"] == "a" and a["url"].endswith("/a") and a["token"] == "tok-a"
        assert ok(report["push_get"]) == a
        assert [c["id"] for c in ok(report["push_list"])] == ["a", "b"]
        assert report["push_delete"] == report["push_delete_again"] == "ok"
        assert [c["id"] for c in ok(report["push_list_after"])] == ["b"]
        assert report["push_get_unknown_task"]["error"] == "TaskNotFoundError"
        assert ok(report["cancel"])["state"] == "TASK_STATE_CANCELED"
        # what the gRPC calls did is what the store holds: one task model
        stored = await server.store.get_task(send[0]["id"])
        assert stored is not None
        assert "".join(p.text or "" for p in stored.task.artifacts[0].parts) == "echo hello grpc"


async def test_subscribe_and_resume_from_last_event_id() -> None:
    controls = Controls()

    async def on_progress(msg: dict[str, Any]) -> None:
        assert msg["progress"] == "subscribed"
        controls.gate.set()

    async with open_server(config(controls)) as server:
        report = await run_script(server, "subscribe", on_progress=on_progress)
        events = report["events"]
        assert events[0]["kind"] == "task"
        assert events[-1] == {**events[-1], "kind": "status_update",
                              "state": "TASK_STATE_COMPLETED"}
        # the task as it was when subscribed, then every chunk after it: no gap, no repeat
        texts = [e["text"] for e in events if e["kind"] == "artifact_update"]
        assert events[0]["artifact_text"] + "".join(texts) == "c0c1c2c3"
        # the replay after event 1 (the task as created) is the whole log after it
        record = await server.store.get_task(events[0]["id"])
        replay = report["replay"]
        assert len(replay) == record.seq - 1
        assert [e.get("text") for e in replay if e["kind"] == "artifact_update"] == [
            "c0", "c1", "c2", "c3"]
        assert replay[-1]["state"] == "TASK_STATE_COMPLETED"
        assert kinds(report["replay_bad_id"]) == ["error:InvalidParamsError"]


async def test_dropping_a_stream_cancels_its_call_not_the_task() -> None:
    controls = Controls()
    async with open_server(config(controls)) as server:
        seen: dict[str, Any] = {}

        async def on_progress(msg: dict[str, Any]) -> None:
            # the client has dropped the stream: the call's trio scope is cancelled
            with trio.fail_after(10):
                while True:
                    stats = server.grpc.monitor.statistics()
                    if stats.cancelled >= 1 and stats.active == 0:
                        break
                    await trio.sleep(0.01)
            seen["stats"] = stats
            seen["task_id"] = msg["task_id"]

        report = await run_script(server, "cancel_stream", on_progress=on_progress)
        assert report["first"]["kind"] == "task"
        assert seen["stats"].cancelled == 1
        # the task runs on: a dropped stream is not a CancelTask
        assert ok(report["after"])["state"] == "TASK_STATE_WORKING"
        assert seen["task_id"] not in controls.cancelled
        controls.gate.set()


async def test_auth_and_isolation_over_grpc() -> None:
    controls = Controls()
    cfg = config(controls, tokens={"tok-alice": "alice", "tok-bob": "bob"},
                 push_notifications=False)
    async with open_server(cfg) as server:
        report = await run_script(server, "auth", "tok-alice", "tok-bob")
        assert report["transport"] == "GrpcTransport"
        assert report["own"][0]["state"] == "TASK_STATE_COMPLETED"
        for key in ("no_token", "wrong_token"):
            (failed,) = report[key]
            assert failed["error"] == "A2AClientError"
            assert "UNAUTHENTICATED" in failed["message"], failed
        # another principal sees nothing of alice's
        assert report["other_get"]["error"] == "TaskNotFoundError"
        assert report["other_list"] == 0
        assert ok(report["extended_card"])["name"] == "scripted"
        assert report["push_off"]["error"] == "PushNotificationNotSupportedError"


async def test_roles_over_grpc_with_jwts() -> None:
    """The SDK client with JWTs: an operator's sends, an observer's (same principal)
    reads that task and is refused sending and cancelling, as PERMISSION_DENIED."""
    from protocol.identity import ClaimNames
    from runtime.http.jwt_auth import JwtSettings
    from runtime.security import SecurityConfig
    from tests.security.keys import AUDIENCE, ISSUER, SECRET, claims, hs_token

    jwt = JwtSettings(issuer=ISSUER, audience=AUDIENCE, secret=SECRET, claims=ClaimNames())
    cfg = config(Controls(), worker_tokens={"w": "worker"}, security=SecurityConfig(jwt=jwt))
    operator = hs_token(claims("alice", roles=["operator"]))
    observer = hs_token(claims("alice", roles=["observer"]))
    async with open_server(cfg) as server:
        report = await run_script(server, "roles", operator, observer)
        assert report["own"][0]["state"] == "TASK_STATE_COMPLETED"
        assert ok(report["reader_get"])["id"] == report["own"][0]["id"]
        (failed,) = report["reader_send"]
        for refused in (failed, report["reader_cancel"]):
            # not one of A2A's own errors: the SDK's generic error, with the status
            assert refused["error"] == "A2AClientError", refused
            assert refused["message"].startswith("gRPC Error PERMISSION_DENIED: "), refused
            assert observer not in refused["message"]
        assert "message.send" in failed["message"]
        assert "task.cancel" in report["reader_cancel"]["message"]


def write_docs_example(into: Path) -> Path:
    """docs/grpc.md's Python example, as written, in a file."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "grpc.md").read_text()
    script = into / "example.py"
    script.write_text(doc.split("```python\n", 1)[1].split("```", 1)[0])
    return script


async def test_the_docs_example_runs(tmp_path: Path) -> None:
    """The docs' example against a live server with auth on."""
    script = write_docs_example(tmp_path)
    async with open_server(config(Controls(), tokens={"tok-1": "alice"})) as server:
        with trio.fail_after(SCRIPT_TIMEOUT):
            done = await trio.run_process([sys.executable, str(script), server.url, "tok-1"],
                                          capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
        listed = await server.service.list_tasks(ListTasksRequest(), "alice")
    out = done.stdout.decode()
    assert out.startswith("task ") and "status_update" in out and "hello over gRPC" in out
    assert [t.status.state.value for t in listed.tasks] == ["TASK_STATE_COMPLETED"]


async def test_signed_calls_from_the_sdk_client() -> None:
    """The SDK client with our grpc.aio signing interceptor in its channel: alice's key
    is required of her, so her signed calls (streaming and not) pass and unsigned ones
    are refused as UNAUTHENTICATED."""
    from runtime.http.signing_settings import SigningSettings
    from runtime.security import SecurityConfig

    secret = "k" * 40
    signing = SigningSettings(keys={"alice-key": secret.encode()},
                              principals={"alice-key": "alice"},
                              required_keys=frozenset({"alice-key"}))
    cfg = config(Controls(), tokens={"tok-alice": "alice"}, worker_tokens={"w": "worker"},
                 security=SecurityConfig(request_signing=signing))
    async with open_server(cfg) as server:
        report = await run_script(server, "signed", "tok-alice",
                                  env={"TRIO_A2A_TEST_SIGNING_KEY": f"alice-key:{secret}"})
        assert report["transport"] == "GrpcTransport"
        for name in ("signed", "signed_stream"):
            assert report[name][-1].get("state") == "TASK_STATE_COMPLETED", report
        assert report["signed_list"] == 1 and report["signed_stream_list"] == 2
        (failed,) = report["unsigned"]
        assert failed["error"] == "A2AClientError"
        assert "UNAUTHENTICATED" in failed["message"], failed
        assert "must be signed" in failed["message"], failed
