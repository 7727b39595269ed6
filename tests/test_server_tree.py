"""The server's supervision tree (rest_for_one) with a real HTTP listener on loopback:
a failing child is restarted with the children after it, the listener binds its port
again, nothing stored is lost; a tree that gives up raises one clear exception."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

import runtime.server as server_module
from actors.push_delivery import PushDelivery
from runtime.server import ServerConfig, open_server
from runtime.supervisor import SupervisorGaveUp
from tests.conftest import Rpc, user_message


def flaky_push(monkeypatch: pytest.MonkeyPatch, *, fail: Callable[[int], bool],
               crash: trio.Event | None = None) -> list[int]:
    """PushDelivery.run, failing on the starts `fail` picks (1 = the first start); a
    failing start waits for `crash` first if given. Returns the list of starts."""
    starts: list[int] = []
    original = PushDelivery.run

    async def run(self: PushDelivery, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(len(starts) + 1)
        if not fail(len(starts)):
            await original(self, task_status=task_status)
            return
        task_status.started()
        if crash is not None:
            await crash.wait()
        raise RuntimeError("push delivery broke")

    monkeypatch.setattr(PushDelivery, "run", run)
    return starts


def count_listeners(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the HTTP child started hypercorn, and on which port."""
    ports: list[int] = []
    original = server_module.serve_asgi

    async def serve(app: Any, sock: Any, **kw: Any) -> None:
        ports.append(sock.getsockname()[1])
        await original(app, sock, **kw)

    monkeypatch.setattr(server_module, "serve_asgi", serve)
    return ports


async def test_a_failed_child_restarts_with_the_ones_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash = trio.Event()
    starts = flaky_push(monkeypatch, fail=lambda n: n == 1, crash=crash)
    ports = count_listeners(monkeypatch)
    config = ServerConfig(port=0, store="memory")
    with trio.fail_after(20):
        async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as c:
            rpc = Rpc(c, "1.0")
            before = await rpc.call("SendMessage", {"message": user_message("echo before")})
            assert srv.supervisor.statistics().total_restarts == 0
            crash.set()
            while (srv.supervisor.statistics().restarts["push"] < 1  # noqa: ASYNC110
                   or "http" not in srv.supervisor.statistics().running):
                await trio.sleep(0.01)
            # rest_for_one: push and the http listener after it started again, on the
            # same port; the store and the dispatcher before it kept running
            assert starts == [1, 2]
            assert ports == [srv.port, srv.port]
            stats = srv.supervisor.statistics()
            assert stats.restarts == {"store": 0, "dispatcher": 0, "local-worker-0": 0,
                                      "push": 1, "http": 0, "mcp": 0}
            after = await rpc.call("SendMessage", {"message": user_message("echo after")})
            assert after["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            kept = await rpc.call("GetTask", {"id": before["task"]["id"]})
            assert kept == before["task"]


async def test_a_tree_that_gives_up_raises_one_clear_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash = trio.Event()
    starts = flaky_push(monkeypatch, fail=lambda n: True, crash=crash)  # every start fails
    config = ServerConfig(port=0, store="memory", max_restarts=2, restart_window=30)
    with trio.fail_after(20), pytest.raises(SupervisorGaveUp) as info:
        async with open_server(config):
            crash.set()  # the first run fails now; each restart fails at once
            await trio.sleep_forever()
    assert starts == [1, 2, 3]
    assert info.value.child == "push" and info.value.supervisor == "server"
    assert "gave up" in str(info.value)


async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    with trio.fail_after(10), pytest.raises(KeyError, match="mine"):
        async with open_server(ServerConfig(port=0, store="memory")):
            raise KeyError("mine")
