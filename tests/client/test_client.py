"""The A2A client against real servers on loopback: ours (1.0 and 0.3) and the official SDK's.

Faults the real servers cannot be made to produce (bad JSON, cut streams, timeouts)
are injected at the HTTP port with `httpx.MockTransport`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.errors import TaskNotCancelableError, TaskNotFoundError
from protocol.models import AgentCard, Message, Task, TaskState
from runtime.client.client import (
    USAGE_KEY,
    A2AConnectionError,
    A2AHTTPError,
    A2AResponseError,
    A2ARpcError,
    A2AUnsupportedError,
    open_a2a_client,
    select_interface,
)
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls

SDK_SCRIPT = Path(__file__).parents[1] / "interop" / "sdk_server_script.py"


def kinds(events: list[Any]) -> list[str]:
    return [next(k for k, v in e.model_dump(by_alias=True).items() if v is not None)
            for e in events]


def artifact_text(task: Any) -> str:
    return "".join(p.text or "" for a in task.artifacts or () for p in a.parts)


# --- choosing the interface from the card ---------------------------------------------


def card(*interfaces: tuple[str, str]) -> AgentCard:
    return AgentCard.model_validate({
        "name": "a", "description": "d", "version": "1", "capabilities": {},
        "defaultInputModes": [], "defaultOutputModes": [], "skills": [],
        "supportedInterfaces": [
            {"url": f"http://h/{binding}/{version}", "protocolBinding": binding,
             "protocolVersion": version}
            for binding, version in interfaces
        ],
    })


def test_select_interface_prefers_1_0_then_0_3_then_unversioned() -> None:
    both = card(("HTTP+JSON", "1.0"), ("JSONRPC", "0.3"), ("JSONRPC", "1.0"))
    assert select_interface(both) == ("1.0", "http://h/JSONRPC/1.0")
    assert select_interface(both, "0.3") == ("0.3", "http://h/JSONRPC/0.3")
    assert select_interface(card(("JSONRPC", "0.3.0"))) == ("0.3", "http://h/JSONRPC/0.3.0")
    assert select_interface(card(("JSONRPC", ""), ("JSONRPC", "0.3"))) == (
        "0.3", "http://h/JSONRPC/0.3")
    assert select_interface(card(("JSONRPC", ""))) == ("1.0", "http://h/JSONRPC/")
    with pytest.raises(ValueError, match=r"no a JSON-RPC 1.0 interface .*JSONRPC 0.3"):
        select_interface(card(("JSONRPC", "0.3")), "1.0")
    with pytest.raises(ValueError, match="declares: HTTP\\+JSON 1.0"):
        select_interface(card(("HTTP+JSON", "1.0")))


# --- our server, 1.0 -------------------------------------------------------------------


async def test_card_picks_1_0_and_blocking_send_returns_the_task(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            assert client.protocol == "1.0"
            assert client.rpc_url == server.url + "/"
            assert client.card_url == server.url + "/.well-known/agent-card.json"
            assert (await client.card()).name == "scripted"
            task = await client.send("hello client", metadata={"k": "v"})
    assert task.status.state is TaskState.COMPLETED
    assert artifact_text(task) == "hello client"
    assert task.history is not None and task.history[0].parts[0].text == "hello client"


async def test_stream_events_task_snapshot_and_resume(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            ids: list[str | None] = []
            async with client.send_stream("chunks 4") as events:
                got = []
                async for ev in events:
                    got.append(ev)
                    ids.append(events.last_event_id)
            assert kinds(got) == ["task", "statusUpdate", *["artifactUpdate"] * 4,
                                  "statusUpdate"]
            assert events.task is not None and events.task.status.state is TaskState.COMPLETED
            assert artifact_text(events.task) == "c0c1c2c3"
            assert ids == [str(i) for i in range(1, len(got) + 1)]
            # resume after the third event: the rest, once
            async with client.subscribe(events.task.id, last_event_id=ids[2]) as resumed:
                rest = [ev async for ev in resumed]
    assert rest == got[3:]


async def test_get_list_cancel_and_subscribe(server: RunningServer, controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            waiting = await client.send("wait", blocking=False)
            assert isinstance(waiting, Task)
            await controls.wait_started(waiting.id)
            canceled = await client.cancel(waiting.id)
            assert canceled.status.state is TaskState.CANCELED
            assert (await client.get_task(waiting.id)).status.state is TaskState.CANCELED
            page = await client.list_tasks(status="TASK_STATE_CANCELED", page_size=10)
            assert [t.id for t in page.tasks] == [waiting.id]
            second = await client.send("wait", blocking=False)
            async with client.subscribe(second.id) as sub:
                async for ev in sub:
                    if ev.task is not None:
                        controls.gate.set()  # subscribed: let the agent finish
            assert sub.task is not None and sub.task.status.state is TaskState.COMPLETED


async def test_direct_reply_is_a_message(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            reply = await client.send("reply hi")
            async with client.send_stream("reply there") as events:
                streamed = [ev async for ev in events]
    assert isinstance(reply, Message) and reply.parts[0].text == "direct: hi"
    # streamed, our server tells the reply inside the task's story
    assert "message" in kinds(streamed)
    assert events.task is not None and events.task.history is not None
    assert events.task.history[-1].parts[0].text == "direct: there"


async def test_agent_errors_are_typed_with_code_and_data(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            with pytest.raises(A2ARpcError) as unknown:
                await client.get_task("nope")
            done = await client.send("echo x")
            assert isinstance(done, Task)
            with pytest.raises(A2ARpcError) as not_cancelable:
                await client.cancel(done.id)
            with pytest.raises(A2ARpcError) as refused_stream:
                async with client.subscribe(done.id) as sub:
                    [ev async for ev in sub]
    exc = unknown.value
    assert exc.code == -32001 and exc.reason == "TASK_NOT_FOUND"
    assert isinstance(exc.error, TaskNotFoundError)
    assert exc.data[0]["reason"] == "TASK_NOT_FOUND"
    assert server.url in str(exc) and "-32001" in str(exc)
    assert isinstance(not_cancelable.value.error, TaskNotCancelableError)
    assert refused_stream.value.code == -32004
    failed = [m for m in client.metrics if m.error is not None]
    assert [m.error_code for m in failed] == [-32001, -32002, -32004]
    assert not any(m.ok for m in failed)


async def test_early_exit_closes_the_stream_and_records_it(server: RunningServer,
                                                           controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url) as client:
            async with client.send_stream("wait") as events:
                async for _ in events:
                    break
            metric = client.metrics[-1]
            controls.gate.set()
    assert metric.method == "SendStreamingMessage" and metric.ok and metric.events == 1
    assert metric.state == "TASK_STATE_SUBMITTED"


# --- our server, 0.3 -------------------------------------------------------------------


async def test_0_3_against_our_server(server: RunningServer, controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url, protocol="0.3") as client:
            assert client.protocol == "0.3"
            task = await client.send("hello old friend")
            assert artifact_text(task) == "hello old friend"
            async with client.send_stream("chunks 2") as events:
                got = [ev async for ev in events]
            assert kinds(got) == ["task", "statusUpdate", "artifactUpdate", "artifactUpdate",
                                  "statusUpdate"]
            assert events.task is not None and events.task.status.state is TaskState.COMPLETED
            assert (await client.get_task(task.id)).status.state is TaskState.COMPLETED
            waiting = await client.send("wait", blocking=False)
            await controls.wait_started(waiting.id)
            assert (await client.cancel(waiting.id)).status.state is TaskState.CANCELED
            with pytest.raises(A2ARpcError) as unknown:
                await client.get_task("nope")
            with pytest.raises(A2AUnsupportedError, match="needs A2A 1.0"):
                await client.list_tasks()
    assert unknown.value.code == -32001


# --- usage and metrics ------------------------------------------------------------------


async def counting_agent(ctx: TaskContext, emit: Emitter) -> None:
    usage = {"provider": "fake", "model": "m1", "input": 10, "output": 4}
    aid = await emit.artifact_text("one ", metadata={USAGE_KEY: usage})
    await emit.artifact_text("two", artifact_id=aid, append=True, last_chunk=True,
                             metadata={USAGE_KEY: {**usage, "input": 5, "output": 1}})


async def test_metrics_carry_latency_and_usage_and_export_as_json() -> None:
    config = ServerConfig(port=0, store="memory",
                          agent=AgentSpec(name="counting", run=counting_agent))
    with trio.fail_after(10):
        async with open_server(config) as server, open_a2a_client(server.url) as client:
            await client.send("count")
            async with client.send_stream("count") as events:
                [ev async for ev in events]
            exported = json.loads(client.metrics_json())
    card, sent, streamed = exported
    assert card["method"] == "GetAgentCard" and card["ok"]
    assert sent["method"] == "SendMessage" and sent["events"] == 1
    assert streamed["method"] == "SendStreamingMessage" and streamed["events"] == 5
    for m in (sent, streamed):
        assert m["ok"] and m["error"] is None and m["protocol"] == "1.0"
        assert 0 <= m["first_s"] <= m["total_s"] < 10
        assert m["state"] == "TASK_STATE_COMPLETED" and m["task_id"]
        assert (m["provider"], m["model"]) == ("fake", "m1")
    # the blocking answer holds the artifact's merged metadata; the stream saw both chunks
    assert (sent["input_tokens"], sent["output_tokens"]) == (5, 1)
    assert (streamed["input_tokens"], streamed["output_tokens"]) == (15, 5)


async def test_metrics_keep_the_last_max_metrics(server: RunningServer) -> None:
    with trio.fail_after(10):
        async with open_a2a_client(server.url, max_metrics=2) as client:
            task = await client.send("one")
            for _ in range(3):
                await client.get_task(task.id)
    assert [m.method for m in client.metrics] == ["GetTask", "GetTask"]


# --- HTTP and connection errors ---------------------------------------------------------


async def test_http_401_names_the_url_and_the_token_fixes_it() -> None:
    config = ServerConfig(port=0, store="memory", tokens={"s3cret": "alice"})
    with trio.fail_after(10):
        async with open_server(config) as server:
            async with open_a2a_client(server.url) as client:
                with pytest.raises(A2AHTTPError) as refused:
                    await client.send("hi")
            async with open_a2a_client(server.url, token="s3cret") as client:
                task = await client.send("hi")
    assert refused.value.status_code == 401
    assert f"HTTP 401 from {server.url}/" in str(refused.value)
    assert "bearer token" in str(refused.value)
    assert task.status.state is TaskState.COMPLETED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(10), pytest.raises(A2AConnectionError) as refused:
        async with open_a2a_client(url):
            pass
    assert f"cannot connect to {url}/.well-known/agent-card.json" in str(refused.value)


# --- faults injected at the HTTP port ----------------------------------------------------

CARD_03 = {"name": "old", "description": "a 0.3 agent", "url": "http://agent.test/rpc",
           "version": "1", "protocolVersion": "0.3.0", "capabilities": {"streaming": True},
           "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
           "skills": []}
TASK_03 = {"kind": "task", "id": "t1", "contextId": "c1", "status": {"state": "working"}}


def mock(rpc: Callable[[httpx.Request], httpx.Response],
         card_paths: tuple[str, ...] = ("/.well-known/agent-card.json",)) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            if request.url.path in card_paths:
                return httpx.Response(200, json=CARD_03)
            return httpx.Response(404, text="no such page")
        return rpc(request)
    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def sse(*results: Any, tail: str = "") -> httpx.Response:
    body = "".join(f"data: {json.dumps({'jsonrpc': '2.0', 'id': 1, 'result': r})}\n\n"
                   for r in results)
    return httpx.Response(200, headers={"content-type": "text/event-stream"},
                          content=(body + tail).encode())


async def test_legacy_card_path_and_0_3_card() -> None:
    def rpc(request: httpx.Request) -> httpx.Response:
        assert request.headers["A2A-Version"] == "0.3"
        body = json.loads(request.content)
        assert body["method"] == "tasks/get" and body["params"] == {"id": "t1"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": TASK_03})
    with trio.fail_after(5):
        async with mock(rpc, ("/.well-known/agent.json",)) as http, \
                open_a2a_client("http://agent.test", http_client=http) as client:
            task = await client.get_task("t1")
    assert (client.protocol, client.rpc_url) == ("0.3", "http://agent.test/rpc")
    assert client.card_url == "http://agent.test/.well-known/agent.json"
    assert task.status.state is TaskState.WORKING
    assert [m.error for m in client.metrics[:2]] == ["HTTP 404", None]


@pytest.mark.parametrize(("response", "error", "text"), [
    (httpx.Response(200, text="<html>oops"), A2AResponseError, "returned invalid JSON"),
    (httpx.Response(200, json={"hello": 1}), A2AResponseError, "no JSON-RPC response"),
    (httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, "result": {"kind": "task"}}),
     A2AResponseError, "malformed result: result.id: field required"),
    (httpx.Response(502, text="bad gateway"), A2AHTTPError, "HTTP 502 from .*: bad gateway"),
    (httpx.Response(500, json={"jsonrpc": "2.0", "id": 1,
                               "error": {"code": -32603, "message": "boom"}}),
     A2ARpcError, "boom \\(JSON-RPC error -32603\\)"),
])
async def test_bad_answers_raise_clear_errors(response: httpx.Response, error: type,
                                              text: str) -> None:
    with trio.fail_after(5):
        async with mock(lambda _: response) as http, \
                open_a2a_client("http://agent.test", http_client=http) as client:
            with pytest.raises(error, match=text) as caught:
                await client.get_task("t1")
    assert caught.value.url == "http://agent.test/rpc"
    assert "http://agent.test/rpc" in str(caught.value)


async def test_timeout_and_broken_connection() -> None:
    def rpc(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)
    with trio.fail_after(5):
        async with mock(rpc) as http, \
                open_a2a_client("http://agent.test", http_client=http, timeout=2) as client:
            with pytest.raises(A2AConnectionError, match="no answer from http://agent.test/rpc"):
                await client.get_task("t1")
            with pytest.raises(A2AConnectionError, match="no answer"):
                async with client.send_stream("x") as events:
                    [ev async for ev in events]
    assert [m.ok for m in client.metrics] == [True, False, False]


async def test_stream_cut_mid_event_and_0_3_final_flag() -> None:
    final = {"kind": "status-update", "taskId": "t1", "contextId": "c1",
             "status": {"state": "completed"}, "final": True}
    answers = iter([sse(TASK_03, tail='data: {"jsonrpc": "2.0", "id": 1, "res'),
                    sse(TASK_03, final, TASK_03)])
    with trio.fail_after(5):
        async with mock(lambda _: next(answers)) as http, \
                open_a2a_client("http://agent.test", http_client=http) as client:
            got = []
            with pytest.raises(A2AConnectionError, match="ended in the middle of an event"):
                async for ev in client.send_stream("x"):
                    got.append(ev)
            assert kinds(got) == ["task"]
            async with client.send_stream("y") as events:
                rest = [ev async for ev in events]
    assert kinds(rest) == ["task", "statusUpdate"]  # nothing read after `final`
    assert events.task is not None and events.task.status.state is TaskState.COMPLETED


async def test_a_stream_of_one_message() -> None:
    reply = {"kind": "message", "messageId": "m1", "role": "agent",
             "parts": [{"kind": "text", "text": "hi"}]}
    with trio.fail_after(5):
        async with mock(lambda _: sse(reply)) as http, \
                open_a2a_client("http://agent.test", http_client=http) as client:
            async with client.send_stream("x") as events:
                got = [ev async for ev in events]
    assert kinds(got) == ["message"]
    assert isinstance(events.result, Message) and events.task is None
    assert events.result.parts[0].text == "hi"


async def test_bad_card_and_bad_url() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "x"})
    with trio.fail_after(5):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
            with pytest.raises(A2AResponseError, match="not a valid A2A card: card.description"):
                async with open_a2a_client("http://agent.test", http_client=http):
                    pass
            with pytest.raises(A2AUnsupportedError, match="no a JSON-RPC 1.0 interface"):
                async with mock(lambda _: httpx.Response(500)) as http2, \
                        open_a2a_client("http://agent.test", http_client=http2, protocol="1.0"):
                    pass
    with pytest.raises(Exception, match="not an http"):
        async with open_a2a_client("agent.test"):
            pass


# --- the official SDK's server -------------------------------------------------------------


@pytest.fixture(scope="module", params=["0.3", "1.0,0.3"])
def sdk_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """An a2a-sdk 1.3 server on a free loopback port; (url, the versions its card declares)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SDK_SCRIPT), str(port), request.param],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/.well-known/agent-card.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.poll() is not None else ""
                pytest.fail(f"the SDK server did not start: {err}")
            time.sleep(0.1)
        yield url, request.param
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.interop
async def test_sdk_server_card_driven(sdk_server: tuple[str, str]) -> None:
    url, versions = sdk_server
    expected = "1.0" if versions.startswith("1.0") else "0.3"
    with trio.fail_after(20):
        async with open_a2a_client(url) as client:
            assert client.protocol == expected
            task = await client.send("hello sdk")
            assert task.status.state is TaskState.COMPLETED
            assert artifact_text(task) == "hello sdk"
            async with client.send_stream("stream me") as events:
                got = [ev async for ev in events]
            assert kinds(got) == ["task", "statusUpdate", "artifactUpdate", "artifactUpdate",
                                  "statusUpdate"]
            assert events.task is not None and artifact_text(events.task) == "stream me"
            assert events.task.status.state is TaskState.COMPLETED
            assert (await client.get_task(task.id)).status.state is TaskState.COMPLETED
            with pytest.raises(A2ARpcError) as unknown:
                await client.get_task("no-such-task")
            with pytest.raises(A2ARpcError) as done:
                await client.cancel(task.id)
            waiting = await client.send("wait", blocking=False)
            async with client.subscribe(waiting.id) as sub:
                async for ev in sub:
                    if ev.task is not None:
                        canceled = await client.cancel(waiting.id)
            assert canceled.status.state is TaskState.CANCELED
            assert sub.task is not None and sub.task.status.state is TaskState.CANCELED
            await client.send("usage")
            usage = client.metrics[-1]
            if expected == "1.0":
                assert (await client.list_tasks(page_size=100)).tasks
            else:
                with pytest.raises(A2AUnsupportedError):
                    await client.list_tasks()
            exported = json.loads(client.metrics_json())
    assert unknown.value.code == -32001 and isinstance(unknown.value.error, TaskNotFoundError)
    assert done.value.code == -32002
    assert (usage.input_tokens, usage.output_tokens, usage.model) == (7, 3, "echo-1")
    assert {m["protocol"] for m in exported[1:]} == {expected}
    assert [m["error_code"] for m in exported if not m["ok"]] == [-32001, -32002]


@pytest.mark.interop
async def test_sdk_server_forced_0_3(sdk_server: tuple[str, str]) -> None:
    url, _ = sdk_server
    with trio.fail_after(20):
        async with open_a2a_client(url, protocol="0.3") as client:
            task = await client.send("hi")
    assert client.protocol == "0.3" and artifact_text(task) == "hi"
