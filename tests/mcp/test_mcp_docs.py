"""docs/mcp.md's examples work: the Python client runs against a real server, and the
host configuration is JSON naming /mcp and a bearer token."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime.server import ServerConfig, open_server
from tests.agents import scripted_agent

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def _block(language: str) -> str:
    [code] = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return code


async def test_the_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_block("python"), str(DOC), "exec"), namespace)
    config = ServerConfig(port=0, store="memory", tokens={"change-me": "me"},
                          agent=scripted_agent())
    with trio.fail_after(10):
        async with open_server(config) as srv:
            task_id = await namespace["main"](f"{srv.url}/mcp", "change-me")
            record = await srv.store.get_task(task_id)
    assert record is not None and record.owner == "me"
    assert record.dispatch.route.priority == 5
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("['send_task', 'get_task', 'list_tasks', 'cancel_task', 'list_agents', "
                      "'list_workers']")
    assert out[1:3] == ["1 agent(s) available", "scripted: skills scripted; on 1 worker(s)"]
    assert out[3] == "[1] working"
    assert f"Task {task_id} is completed." in out
    assert out[-1] == "completed"


def test_the_host_configuration_is_json_for_mcp() -> None:
    config = json.loads(_block("json"))
    server = config["mcpServers"]["trio-a2a"]
    assert server["url"].endswith("/mcp")
    assert server["headers"]["Authorization"] == "Bearer change-me"
