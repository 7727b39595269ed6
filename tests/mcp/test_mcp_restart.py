"""The MCP child under the server's supervisor (rest_for_one, last in the tree): it
fails alone, without taking the HTTP listener down, and it serves /mcp again through a
fresh SDK session manager whenever it starts again."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import trio

from runtime.mcp import McpEndpoint
from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import Rpc, user_message
from tests.mcp.helpers import open_mcp
from tests.test_server_tree import count_listeners, flaky_push


def flaky_mcp(monkeypatch: pytest.MonkeyPatch, *, crash: trio.Event | None = None
              ) -> list[int]:
    """McpEndpoint.run, its first start failing once `crash` is set (never without one)."""
    starts: list[int] = []
    original = McpEndpoint.run

    async def run(self: McpEndpoint, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(len(starts) + 1)
        if crash is None or len(starts) > 1:
            await original(self, task_status=task_status)
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(original, self)
            task_status.started()
            await crash.wait()
            raise RuntimeError("the MCP session manager broke")

    monkeypatch.setattr(McpEndpoint, "run", run)
    return starts


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 (the supervisor has no event to wait on)
        await trio.sleep(0.01)


async def until_listening(host: str, port: int) -> None:
    """Until the restarted listener takes connections (it binds after it is started)."""
    while True:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            await trio.sleep(0.01)
            continue
        await stream.aclose()
        return


async def test_mcp_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    crash = trio.Event()
    starts = flaky_mcp(monkeypatch, crash=crash)
    ports = count_listeners(monkeypatch)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent())
    with trio.fail_after(20):
        async with open_server(config) as srv:
            async with httpx.AsyncClient(base_url=srv.url) as c:
                rpc = Rpc(c, "1.0")
                before = await rpc.call("SendMessage", {"message": user_message("echo a")})
                crash.set()
                await until(lambda: len(starts) == 2
                            and "mcp" in srv.supervisor.statistics().running)
                # the A2A listener was not restarted: same listener, same client connection
                after = await rpc.call("GetTask", {"id": before["task"]["id"]})
            async with open_mcp(srv.url) as mcp:
                served = await mcp.call_tool("get_task", {"task_id": before["task"]["id"]})
            stats = srv.supervisor.statistics()
    assert ports == [srv.port]
    assert stats.restarts["mcp"] == 1 and stats.restarts["http"] == 0
    assert after == before["task"]
    assert served.structured_content["state"] == "completed"


async def test_mcp_serves_again_after_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    crash = trio.Event()
    flaky_push(monkeypatch, fail=lambda n: n == 1, crash=crash)
    starts = flaky_mcp(monkeypatch)
    config = ServerConfig(port=0, store="memory", agent=scripted_agent())
    with trio.fail_after(20):
        async with open_server(config) as srv:
            async with open_mcp(srv.url) as mcp:
                before = await mcp.call_tool("send_task", {"text": "echo before"})
            crash.set()  # push fails: push, http and mcp start again, in order
            await until(lambda: len(starts) == 2
                        and "mcp" in srv.supervisor.statistics().running)
            await until_listening(srv.host, srv.port)
            async with open_mcp(srv.url) as mcp:
                kept = await mcp.call_tool("get_task",
                                           {"task_id": before.structured_content["taskId"]})
                after = await mcp.call_tool("send_task", {"text": "echo after"})
    assert starts == [1, 2]
    assert kept.structured_content["state"] == "completed"
    assert after.structured_content["state"] == "completed"
