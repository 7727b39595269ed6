"""The A2A backend: a trio-a2a server whose agent relays each task to another A2A
agent — a second trio-a2a server, and the official a2a-sdk 1.3 server (1.0 and 0.3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from runtime.agents.a2a_relay import a2a_relay_agent
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.client.test_client import sdk_server  # noqa: F401  (fixture)
from tests.conftest import Rpc, user_message


@asynccontextmanager
async def front(url: str) -> AsyncIterator[tuple[Rpc, RunningServer]]:
    async with open_server(ServerConfig(port=0, store="memory",
                                        agent=a2a_relay_agent(url))) as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=20) as client:
        yield Rpc(client, "1.0"), srv


def texts(task: dict[str, Any]) -> list[str]:
    return ["".join(p.get("text", "") for p in a["parts"]) for a in task.get("artifacts", [])]


async def send(rpc: Rpc, text: str, **kw: Any) -> dict[str, Any]:
    return (await rpc.call("SendMessage", {"message": user_message(text, **kw)}))["task"]


async def test_relays_to_another_trio_a2a_server_with_input_required_and_cancel() -> None:
    controls = Controls()
    with trio.fail_after(30):
        async with open_server(ServerConfig(port=0, store="memory",
                                            agent=scripted_agent(controls))) as back, \
                front(back.url) as (rpc, _):
            done = await send(rpc, "echo relayed hello")
            asked = await send(rpc, "ask")
            answered = await send(rpc, "Ada", taskId=asked["id"], contextId=asked["contextId"])
            stream = await rpc.stream("SendStreamingMessage",
                                      {"message": user_message("chunks 3")})
            before = len(controls.started)
            waiting = (await rpc.call("SendMessage", {
                "message": user_message("wait"), "configuration": {"returnImmediately": True}}
            ))["task"]
            while len(controls.started) == before:  # noqa: ASYNC110  (the remote runs it)
                await trio.sleep(0.05)
            canceled = await rpc.call("CancelTask", {"id": waiting["id"]})
            while not controls.cancelled:  # noqa: ASYNC110  (the remote task is canceled too)
                await trio.sleep(0.05)
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(done) == ["echo relayed hello"]
    assert asked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert answered["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(answered) == ["Ada"]  # the same remote task went on with the answer
    chunk_events = [e for e in stream if "artifactUpdate" in json.loads(e.data)["result"]]
    assert len(chunk_events) == 3  # relayed chunk by chunk
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"


@pytest.mark.parametrize("sdk_server", ["1.0", "0.3"], indirect=True)
async def test_relays_to_the_a2a_sdk_server(sdk_server: tuple[str, str]) -> None:  # noqa: F811
    url, versions = sdk_server
    with trio.fail_after(30):
        async with front(url) as (rpc, _):
            done = await send(rpc, "hello sdk")
    assert done["status"]["state"] == "TASK_STATE_COMPLETED", done["status"]
    assert texts(done) == ["hello sdk"]
