"""Agents see who sent their task and which output modes the client accepts.

`TaskContext.principal` and `TaskContext.accepted_output_modes` reach the agent
through the claim grant (`ClaimReply.principal`, `ClaimReply.acceptedOutputModes`),
so they hold on every worker: the server's embedded one and remote ones over the
WebSocket and the HTTP binding. Real server with client auth on, real workers.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker
from tests.conftest import Rpc, user_message

Where = Literal["embedded", "websocket", "http"]


@pytest.mark.parametrize("where", ["embedded", "websocket", "http"])
async def test_the_agent_sees_the_principal_and_the_accepted_output_modes(where: Where) -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    async def run(ctx: TaskContext, emit: Emitter) -> None:
        seen.append((ctx.principal, tuple(ctx.accepted_output_modes)))
        if not ctx.history:
            await emit.input_required("and then?")
        else:
            await emit.reply("thanks")

    spec = AgentSpec(name="who", run=run)
    cfg = ServerConfig(port=0, store="memory", tokens={"tok-alice": "alice"},
                       worker_tokens={"wtok": "wrk"}, agent=spec,
                       local_workers=1 if where == "embedded" else 0)
    with trio.fail_after(30):
        async with open_server(cfg) as server, contextlib.AsyncExitStack() as stack:
            if where != "embedded":
                worker = await stack.enter_async_context(open_worker(
                    server.url, token="wtok", agent=spec, transport=where))
                await worker.wait_registered()
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                rpc = Rpc(c, "1.0", headers={"Authorization": "Bearer tok-alice"})
                first = await rpc.call("SendMessage", {
                    "message": user_message("hello"),
                    "configuration": {"acceptedOutputModes": ["text/plain",
                                                              "application/json"]}})
                task_id = first["task"]["id"]
                assert first["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
                # the continuation says again what it accepts, and the run gets that
                second = await rpc.call("SendMessage", {
                    "message": user_message("more", taskId=task_id),
                    "configuration": {"acceptedOutputModes": ["text/markdown"]}})
    assert "message" in second, second
    assert seen == [("alice", ("text/plain", "application/json")),
                    ("alice", ("text/markdown",))]
