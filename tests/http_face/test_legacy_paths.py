"""The 0.1/0.2 gateways' paths and streams, and artifact extension fields, over real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.legacy import EXTENSION_FIELDS_KEY
from protocol.models import Part
from protocol.sse import SSEDecoder
from runtime.agents import echo_agent
from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, user_message, user_message_v03
from tests.http_face.legacy_client import LegacyClient, task_send, text

WORKTREE = {"taskId": "wt-1", "branch": "task/wt-1", "baseRef": "main",
            "path": "/work/.worktrees/wt-1"}
DIFF = base64.b64encode(b"--- a\n+++ b\n").decode()


def worktree_agent(controls: Controls) -> AgentSpec:
    """The scripted agent, plus `worktree`: three artifacts, one carrying a worktree."""
    scripted = scripted_agent(controls)

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        if ctx.text.strip() != "worktree":
            await scripted.run(ctx, emit)
            return
        await emit.artifact([Part(text="patch ready")], name="patch",
                            metadata={EXTENSION_FIELDS_KEY: {"worktree": WORKTREE}, "k": 1})
        await emit.artifact([Part(raw=DIFF, media_type="text/x-diff", filename="a.diff")],
                            name="diff")
        await emit.artifact([Part(data={"files": 2})], name="stats")
        await emit.complete()

    return AgentSpec(name="worktree", run=run, description="test agent")


@pytest.fixture
def server_config(controls: Controls) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=worktree_agent(controls),
                        allow_private_push_urls=True)


@pytest.fixture
def old(client: httpx.AsyncClient) -> LegacyClient:
    return LegacyClient(client)


def check_stream(results: list[dict[str, Any]], task_id: str, end: str) -> None:
    assert all(r["id"] == task_id for r in results)
    assert results[0] == {"id": task_id, "status": results[0]["status"], "final": False}
    assert results[0]["status"]["state"] == "submitted"
    statuses = [r for r in results if "status" in r]
    assert [s["final"] for s in statuses] == [False] * (len(statuses) - 1) + [True]
    assert statuses[-1]["status"]["state"] == end


@pytest.mark.parametrize(("method", "path"), [("tasks/sendStream", "/tasks/sendStream"),
                                              ("tasks/sendSubscribe", "/tasks/sendStream"),
                                              ("tasks/sendSubscribe", "/"),
                                              ("tasks/sendStream", "/")])
async def test_streams_status_and_numbered_artifact_chunks(old: LegacyClient, method: str,
                                                           path: str) -> None:
    with trio.fail_after(10):
        payloads = await old.stream(method, task_send("st-1", text("chunks 3"),
                                                      session_id="s"), path=path)
    results = [p["result"] for p in payloads]
    check_stream(results, "st-1", "completed")
    chunks = [r["artifact"] for r in results if "artifact" in r]
    assert [c["parts"] for c in chunks] == [[text("c0")], [text("c1")], [text("c2")]]
    assert [c["index"] for c in chunks] == [0, 0, 0]
    assert [c.get("append") for c in chunks] == [None, True, True]
    assert chunks[-1]["lastChunk"] is True


async def test_stream_ends_final_at_input_required_and_a_follow_up_streams_on(
        old: LegacyClient) -> None:
    with trio.fail_after(10):
        first = [p["result"] for p in await old.stream("tasks/sendSubscribe",
                                                       task_send("sa-1", text("ask")))]
        second = [p["result"] for p in await old.stream("tasks/sendSubscribe",
                                                        task_send("sa-1", text("ask Ada")))]
    check_stream(first, "sa-1", "input-required")
    assert first[-1]["status"]["message"]["parts"] == [text("what is your name?")]
    check_stream(second, "sa-1", "completed")


async def test_stream_refused_answers_one_error_event(old: LegacyClient) -> None:
    with trio.fail_after(10):
        await old.call("tasks/send", task_send("se-1", text("echo x")), path="/tasks/send")
        payloads = await old.stream("tasks/sendStream", task_send("se-1", text("echo y")),
                                    path="/tasks/sendStream")
        bad = await old.stream("tasks/sendStream", task_send("se-2", {"type": "video"}),
                               path="/tasks/sendStream")
    assert [p["error"]["code"] for p in payloads] == [-32004]
    assert [p["error"]["code"] for p in bad] == [-32602]


async def test_gateway_get_and_cancel(old: LegacyClient, controls: Controls) -> None:
    sent: list[dict[str, Any]] = []

    async def send() -> None:
        sent.append(await old.call("tasks/send", task_send("gc-1", text("wait")),
                                   path="/tasks/send"))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await controls.wait_started("gc-1")
            got = await old.call("tasks/get", {"id": "gc-1"}, path="/tasks/get")
            canceled = await old.call("tasks/cancel", {"id": "gc-1"}, path="/tasks/cancel")
        again = await old.error("tasks/cancel", {"id": "gc-1"}, path="/tasks/cancel")
        unknown = await old.error("tasks/get", {"id": "nope"}, path="/tasks/get")
    assert got["id"] == "gc-1" and got["status"]["state"] in ("submitted", "working")
    assert canceled["status"]["state"] == "canceled" and "sessionId" in canceled
    assert sent[0]["status"]["state"] == "canceled"
    assert again["code"] == -32002 and unknown["code"] == -32001


async def test_gateway_path_takes_only_its_method(client: httpx.AsyncClient,
                                                  old: LegacyClient) -> None:
    with trio.fail_after(10):
        wrong = await old.error("tasks/send", {"id": "x"}, path="/tasks/get")
        other = await old.error("message/send", {"message": user_message_v03("echo")},
                                path="/tasks/send")
        as10 = await Rpc(client, "1.0").raw("SendMessage", {"message": user_message("e")})
        r = await client.post("/tasks/send", content=b'{"jsonrpc":"2.0","id":1,'
                              b'"method":"SendMessage","params":{}}',
                              headers={"A2A-Version": "1.0"})
    assert wrong["code"] == other["code"] == -32600
    assert "POST /tasks/get takes method 'tasks/get'" in wrong["message"]
    assert "result" in as10  # POST / is untouched
    assert r.json()["error"]["code"] == -32600


async def test_worktree_and_parts_come_back_in_the_shape_they_went(
        old: LegacyClient, rpc: Rpc, rpc03: Rpc) -> None:
    with trio.fail_after(10):
        flat = await old.call("tasks/send", task_send("wt-1", text("worktree")),
                              path="/tasks/send")
        schema = await old.call("tasks/send", task_send("wt-2", text("worktree")))
        v03 = await rpc03.call("message/send", {"message": user_message_v03("worktree")})
        v10 = await rpc.call("GetTask", {"id": "wt-1"})
    patch, diff, stats = flat["artifacts"]
    assert patch == {"name": "patch", "parts": [text("patch ready")], "index": 0,
                     "worktree": WORKTREE, "metadata": {"k": 1}}
    assert diff["parts"] == [{"type": "file", "mimeType": "text/x-diff",
                              "fileName": "a.diff", "data": DIFF}]
    assert stats["parts"] == [{"type": "data", "mimeType": "application/json",
                               "data": '{"files":2}'}]
    assert schema["artifacts"][0]["worktree"] == WORKTREE
    assert schema["artifacts"][1]["parts"] == [{"type": "file", "file": {
        "bytes": DIFF, "mimeType": "text/x-diff", "name": "a.diff"}}]
    assert schema["artifacts"][2]["parts"] == [{"type": "data", "data": {"files": 2}}]
    assert v03["artifacts"][0]["metadata"][EXTENSION_FIELDS_KEY] == {"worktree": WORKTREE}
    assert v10["artifacts"][0]["metadata"][EXTENSION_FIELDS_KEY]["worktree"] == WORKTREE


async def test_agent_card_and_skills_paths() -> None:
    async with open_server(ServerConfig(port=0, store="memory", agent=echo_agent)) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            with trio.fail_after(10):
                card = await c.get("/agent/card")
                well_known = await c.get("/.well-known/agent-card.json")
                skills = await c.get("/agent/skills")
                cached = await c.get("/agent/card", headers={"If-None-Match": card.headers["etag"]})
                post = await c.post("/agent/skills", json={})
    assert card.status_code == 200 and card.json() == well_known.json()
    assert card.headers["etag"] == well_known.headers["etag"]
    assert skills.status_code == 200
    assert skills.json() == well_known.json()["skills"] and skills.json()[0]["id"] == "echo"
    assert cached.status_code == 304
    assert post.status_code == 405


async def test_resubscribe_to_an_old_shape_task_streams_in_it(
        client: httpx.AsyncClient, old: LegacyClient, controls: Controls) -> None:
    body = {"jsonrpc": "2.0", "id": "r", "method": "tasks/resubscribe", "params": {"id": "rs-1"}}
    results: list[dict[str, Any]] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(old.call, "tasks/send", task_send("rs-1", text("wait")))
            await controls.wait_started("rs-1")
            async with client.stream("POST", "/", json=body) as r:
                dec = SSEDecoder()
                async for chunk in r.aiter_bytes():
                    results.extend(json.loads(ev.data)["result"] for ev in dec.feed(chunk))
                    controls.gate.set()  # the subscription is open: let the task end
    assert results[0]["id"] == "rs-1" and results[0]["final"] is False
    assert "kind" not in results[0] and results[-1]["status"]["state"] == "completed"
    assert results[-1]["final"] is True
    assert any(r.get("status", {}).get("message", {}).get("parts") == [text("gate opened")]
               for r in results)
