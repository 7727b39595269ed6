"""The server on PostgreSQL: `--store postgres`, `python -m runtime migrate`, restarts."""

from __future__ import annotations

import os
import sys

import httpx
import trio

from runtime.server import ServerConfig, open_server
from tests.conftest import Rpc, user_message

TIMEOUT = 20


async def runtime_cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_A2A_")}
    proc = await trio.run_process([sys.executable, "-m", "runtime", *args], env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


async def test_a_task_survives_a_restart_on_postgres(postgres_url: str) -> None:
    config = ServerConfig(port=0, store="postgres", database_url=postgres_url)
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            rpc = Rpc(http, "1.0")
            task = (await rpc.call("SendMessage", {"message": user_message("hello pg")}))["task"]
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            again = await Rpc(http, "1.0").call("GetTask", {"id": task["id"]})
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert again["status"]["state"] == "TASK_STATE_COMPLETED"
    assert again["artifacts"] == task["artifacts"]


async def test_migrate_command_and_its_errors(fresh_postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        first = await runtime_cli("migrate", "--database-url", fresh_postgres_url)
        second = await runtime_cli("migrate", "--database-url", fresh_postgres_url)
        down = await runtime_cli("migrate", "--database-url",
                                 "postgresql://postgres:hunter2@127.0.0.1:1/nope")
        missing = await runtime_cli("migrate")
        no_url = await runtime_cli("server", "--store", "postgres", "--port", "0")
    assert first[0] == 0 and "schema v0 -> v" in first[1], first
    assert second[0] == 0 and "up to date" in second[1], second
    assert down[0] == 1 and "Traceback" not in down[2] and "hunter2" not in down[2], down
    assert "127.0.0.1:1" in down[2] and len(down[2].strip().splitlines()) == 1, down
    assert missing[0] == 2 and "--database-url" in missing[2]
    assert no_url[0] == 2 and "--store postgres needs --database-url" in no_url[2], no_url
