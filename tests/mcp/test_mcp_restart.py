"""The MCP child under the server's supervisor: restarted with the children before
it fails (rest_for_one), it serves /mcp again through a fresh SDK session manager."""

from __future__ import annotations

import pytest
import trio

from runtime.mcp import McpEndpoint
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.mcp.helpers import open_mcp
from tests.test_server_tree import flaky_push


async def test_mcp_serves_again_after_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    crash = trio.Event()
    flaky_push(monkeypatch, fail=lambda n: n == 1, crash=crash)
    starts: list[int] = []
    original = McpEndpoint.run

    async def run(self: McpEndpoint, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(len(starts) + 1)
        await original(self, task_status=task_status)

    monkeypatch.setattr(McpEndpoint, "run", run)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent())
    with trio.fail_after(20):
        async with open_server(config) as srv:
            async with open_mcp(srv.url) as mcp:
                before = await mcp.call_tool("send_task", {"text": "echo before"})
            crash.set()  # push fails: push, mcp and http start again, in order
            while len(starts) < 2 or "http" not in srv.supervisor.statistics().running:  # noqa: ASYNC110
                await trio.sleep(0.01)
            await _until_listening(srv.host, srv.port)
            async with open_mcp(srv.url) as mcp:
                kept = await mcp.call_tool("get_task",
                                           {"task_id": before.structured_content["taskId"]})
                after = await mcp.call_tool("send_task", {"text": "echo after"})
    assert starts == [1, 2]
    assert kept.structured_content["state"] == "completed"
    assert after.structured_content["state"] == "completed"


async def _until_listening(host: str, port: int) -> None:
    """Until the restarted listener takes connections (it binds after it is started)."""
    while True:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            await trio.sleep(0.01)
            continue
        await stream.aclose()
        return
