"""Connection handling on real loopback sockets: what the server does with a
connection, not with a request.

* A connection the client closes is closed by the server at once, not after the
  keep-alive timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.http_face.wire import close_wait_count, read_answer, request_head, wait_closed

TOKEN = "tok-alice"
AUTH = f"Bearer {TOKEN}"
LIMIT = 64 * 1024
CARD = "/.well-known/agent-card.json"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), max_body=LIMIT,
                          tokens={TOKEN: "alice"})
    async with open_server(config) as srv:
        yield srv


async def connect(server: RunningServer) -> trio.SocketStream:
    return await trio.open_tcp_stream(server.host, server.port)


async def test_a_connection_the_client_closes_is_closed_at_once(server: RunningServer) -> None:
    with trio.fail_after(10):
        streams = []
        for _ in range(20):
            stream = await connect(server)
            await stream.send_all(request_head("GET", CARD))
            assert (await read_answer(stream)).status == 200
            streams.append(stream)
        await trio.testing.wait_all_tasks_blocked()  # every connection idle (keep-alive)
        # A client that shuts down its sending side sees the server close its end.
        await streams[0].send_eof()
        assert await wait_closed(streams[0]) == b""
        for stream in streams:
            await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()  # the server did what it does on EOF
        assert close_wait_count(server.port) == 0
