"""Every log call on the main paths works at DEBUG, and renders as JSON lines.

A structured `extra=` key that collides with a LogRecord attribute ("name",
"message", ...) raises only when its level is enabled; this runs the paths with
everything enabled so such a bug fails here, not in production.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import trio

from runtime.cli import JsonLogFormatter
from runtime.server import ServerConfig, open_server
from tests.agents import Controls, scripted_agent
from tests.conftest import Rpc, user_message


async def test_main_paths_log_cleanly_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    controls = Controls()
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(controls),
                          allow_private_push_urls=True)
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            await rpc.call("SendMessage", {"message": user_message("echo hi")})
            await rpc.call("SendMessage", {"message": user_message("fail")})
            await rpc.stream("SendStreamingMessage", {"message": user_message("chunks 2")})
            task = (await rpc.call("SendMessage", {"message": user_message("wait"),
                                                   "configuration": {"returnImmediately": True}}
                                   ))["task"]
            await controls.wait_started(task["id"])
            await rpc.call("CancelTask", {"id": task["id"]})
            await rpc.error("GetTask", {"id": "missing"})
            await c.post("/", content=b"{", headers={"A2A-Version": "1.0"})
    formatter = JsonLogFormatter()
    assert caplog.records
    for record in caplog.records:
        line = json.loads(formatter.format(record))
        assert line["logger"] == record.name


def test_cli_refuses_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    for argv, needle in [(["server", "--local-workers", "-1"], "--local-workers"),
                         (["server", "--lease-ttl", "0"], "--lease-ttl"),
                         (["server", "--max-concurrent-tasks", "0"], "--max-concurrent-tasks")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert needle in capsys.readouterr().err
