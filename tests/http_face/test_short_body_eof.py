"""A request whose body ends early (the client half-closes or closes after part of
its declared ``Content-Length``) is one bad connection, never the listener's end.

hypercorn answers it with a 400 and closes the connection while the app may still
be writing its own answer; its `TCPServer._close()` sent the EOF without the send
lock, and the `trio.BusyResourceError` that the concurrent `send_all` then raised
escaped the connection's handler into the listener's nursery: the HTTP listener
crashed (every connection dropped) and, after enough crashes, the server exited.
These run the trigger the hostile-traffic harness found on real loopback sockets,
enough times that the race is all but certain to be hit without the fix.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import trio

from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.http_face.wire import read_answer, request_head, wait_closed

TOKEN = "tok-alice"
AUTH = f"Bearer {TOKEN}"
TRIES = 40


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={TOKEN: "alice"}, header_timeout=0.5)
    async with open_server(config) as srv:
        yield srv


async def short_body(server: RunningServer, path: str, *, half_close: bool) -> None:
    stream = await trio.open_tcp_stream(server.host, server.port)
    try:
        await stream.send_all(request_head("GET", path, Authorization=AUTH,
                                           Content_Length=128) + b"x" * 63)
        if half_close:
            await stream.send_eof()
            with trio.fail_after(5):
                await wait_closed(stream)
    finally:
        await stream.aclose()


@pytest.mark.parametrize("path", ["/.well-known/agent.json", "/tasks/no-such-task"],
                         ids=["card", "rest"])
@pytest.mark.parametrize("half_close", [True, False], ids=["half-close", "close"])
async def test_a_short_body_then_eof_leaves_the_listener_up(
        server: RunningServer, path: str, half_close: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(TRIES):
        await short_body(server, path, half_close=half_close)
    await trio.sleep(0.05)  # let the last connections' handlers finish
    restarts = [r for r in caplog.records if "restarting" in r.getMessage()]
    assert not restarts, restarts[0].getMessage()
    failed = [r for r in caplog.records if r.name == "runtime.http.tcp"]
    assert not failed, failed[0].getMessage()  # the close no longer races a send
    # the listener still answers, on a fresh connection
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(request_head("GET", "/.well-known/agent-card.json"))
        with trio.fail_after(5):
            answer = await read_answer(stream)
    assert answer.status == 200
