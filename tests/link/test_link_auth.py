"""Client auth never leaves the worker link open (real servers on loopback).

With client tokens set and no worker tokens, a tokenless connection to
/worker/ws or /worker/link could take a principal's task, read its prompt and
post a forged result. Such a server refuses to start when only remote workers
could run its tasks, keeps the link closed to remote workers when it has
embedded ones (which use the in-process link and need no token), and opens it
only when told to (`open_worker_link`, `--open-worker-link`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket

from protocol import worker_link as wl
from runtime.cli import server_config
from runtime.flags import build_parser
from runtime.server import ServerConfig, open_server
from runtime.worker import WorkerRejected, open_worker
from tests.conftest import user_message

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TOKENS = {"ctok": "alice"}
FLAGS = ("--worker-tokens-file", "--open-worker-link")


def ws_url(url: str) -> str:
    return url.replace("http", "ws", 1) + "/worker/ws"


async def send(url: str, text: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.post("/", json={
            "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": user_message(text)}},
            headers={"A2A-Version": "1.0", "Authorization": "Bearer ctok"})
        assert r.status_code == 200, r.text
        return r.json()["result"]["task"]


async def test_a_remote_only_server_with_client_auth_and_no_worker_tokens_refuses_to_start(
) -> None:
    config = ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENT_TOKENS)
    with trio.fail_after(10), pytest.raises(ValueError) as info:
        async with open_server(config):
            pass
    assert all(flag in str(info.value) for flag in FLAGS), info.value


async def test_embedded_workers_run_while_the_link_refuses_remote_workers() -> None:
    config = ServerConfig(port=0, store="memory", local_workers=1, tokens=CLIENT_TOKENS)
    with trio.fail_after(20):
        async with open_server(config) as server:
            task = await send(server.url, "hello")  # the embedded worker needs no token
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"  # type: ignore[index]
            for headers in ([], [("Authorization", "Bearer anything")],
                            [("Authorization", "Bearer ctok")]):
                with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                    async with trio_websocket.open_websocket_url(ws_url(server.url),
                                                                 extra_headers=headers):
                        pass
                assert rejected.value.status_code == 401
                error = json.loads(rejected.value.body or b"{}")["error"]
                assert error["code"] == wl.UNAUTHORIZED
                assert all(flag in error["message"] for flag in FLAGS), error
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                for headers in ({}, {"Authorization": "Bearer anything"}):
                    r = await client.get("/worker/link", headers=headers)
                    assert r.status_code == 401, r.text
                    assert r.json()["error"]["code"] == wl.UNAUTHORIZED
            with pytest.raises(WorkerRejected, match="HTTP 401"):
                async with open_worker(server.url, token=None, name="intruder") as worker:
                    await worker.wait_registered()
            assert server.dispatcher.statistics().workers == 1  # the embedded one


async def test_open_worker_link_lets_tokenless_remote_workers_on_purpose() -> None:
    config = ServerConfig(port=0, store="memory", local_workers=0, tokens=CLIENT_TOKENS,
                          open_worker_link=True)
    with trio.fail_after(20):
        async with open_server(config) as server, \
                open_worker(server.url, token=None, name="trusted") as worker:
            await worker.wait_registered()
            task = await send(server.url, "hello")
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"  # type: ignore[index]


def test_the_flag_and_its_variable_set_open_worker_link(monkeypatch: pytest.MonkeyPatch,
                                                       ) -> None:
    monkeypatch.setenv("TRIO_A2A_TOKENS", "alice:ctok")
    monkeypatch.delenv("TRIO_A2A_OPEN_WORKER_LINK", raising=False)
    args = ["server", "--local-workers", "0"]
    with pytest.raises(ValueError, match="--open-worker-link"):
        server_config(build_parser().parse_args(args))
    assert server_config(build_parser().parse_args([*args, "--open-worker-link"])
                         ).open_worker_link
    monkeypatch.setenv("TRIO_A2A_OPEN_WORKER_LINK", "1")
    assert server_config(build_parser().parse_args(args)).open_worker_link
    monkeypatch.setenv("TRIO_A2A_OPEN_WORKER_LINK", "")
    assert server_config(build_parser().parse_args(["server"])).open_worker_link is False


async def test_the_cli_refuses_in_one_line_naming_both_flags() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_A2A_")}
    env["TRIO_A2A_TOKENS"] = "alice:ctok"
    with trio.fail_after(30):
        proc = await trio.run_process(
            [sys.executable, "-m", "runtime", "server", "--store", "memory", "--port", "0",
             "--local-workers", "0"], cwd=ROOT, env=env, capture_stdout=True,
            capture_stderr=True, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m runtime server: error: client tokens are set but no worker "
                           "tokens"), last
    assert all(flag in last for flag in FLAGS), last
    assert "ctok" not in err  # a token is never echoed
