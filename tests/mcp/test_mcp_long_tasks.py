"""Long tasks over /mcp: keep-alive progress while a task is quiet, and a call the
client gives up on, which stops only the call (the task runs on)."""

from __future__ import annotations

import pytest
import trio

from runtime.server import RunningServer, ServerConfig
from tests.agents import Controls, scripted_agent
from tests.conftest import wait_state
from tests.mcp.helpers import open_mcp, text_of

KEEPALIVE = 0.2


@pytest.fixture
def server_config(controls: Controls) -> ServerConfig:
    return ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                        keepalive=KEEPALIVE)


async def test_a_quiet_task_gets_keepalive_progress(server: RunningServer,
                                                    controls: Controls) -> None:
    seen: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))
        if len(seen) == 3:  # working, then two quiet intervals
            controls.gate.set()

    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            result = await mcp.call_tool("send_task", {"text": "wait"},
                                         progress_callback=progress)
    assert result.structured_content["state"] == "completed"
    values = [v for v, _ in seen]
    assert values == sorted(set(values))  # strictly increasing, as MCP requires
    messages = [m for _, m in seen]
    assert messages[0] == "working"
    assert messages[1] == messages[2] == f"still working: no new event for {KEEPALIVE:g} s"
    assert messages[-1] == "completed: gate opened"


async def test_a_call_given_up_on_leaves_the_task_running(server: RunningServer,
                                                          controls: Controls) -> None:
    with trio.fail_after(10):
        async with open_mcp(server.url) as mcp:
            with trio.move_on_after(0.5) as gave_up:
                await mcp.call_tool("send_task", {"text": "wait"})
            assert gave_up.cancelled_caught
            [task_id] = controls.started
            await wait_state(server, task_id, "TASK_STATE_WORKING")
            controls.gate.set()
            await wait_state(server, task_id, "TASK_STATE_COMPLETED")
            # the client goes on working after the call it abandoned
            done = await mcp.call_tool("get_task", {"task_id": task_id})
    assert controls.cancelled == []
    assert "gate opened" in text_of(done)
