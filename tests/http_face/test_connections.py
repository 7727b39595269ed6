"""Connection handling on real loopback sockets: what the server does with a
connection, not with a request.

* A request answered before its body has fully arrived (a REST error, the card,
  401, 404, 405, 413, a version error) ends its connection cleanly: the answer says
  ``Connection: close`` and the server closes its end. (It used to wedge: the next
  request was never answered and the socket stayed in CLOSE-WAIT for good.)
* A body over ``max_body`` is refused without being read.
* A connection the client closes is closed by the server at once, not after the
  keep-alive timeout.
* A request head must arrive within ``header_timeout`` of its first byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.conftest import user_message
from tests.http_face.wire import close_wait_count, read_answer, request_head, wait_closed

TOKEN = "tok-alice"
AUTH = f"Bearer {TOKEN}"
LIMIT = 64 * 1024
CARD = "/.well-known/agent-card.json"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(), max_body=LIMIT,
                          tokens={TOKEN: "alice"}, header_timeout=0.5)
    async with open_server(config) as srv:
        yield srv


async def connect(server: RunningServer) -> trio.SocketStream:
    return await trio.open_tcp_stream(server.host, server.port)


# (what, method, path, headers, status); each is answered before the body is read
EARLY = [
    ("404", "POST", "/no/such/path", {"Authorization": AUTH}, 404),
    ("card", "GET", CARD, {}, 200),
    ("405", "POST", "/tasks", {"Authorization": AUTH}, 405),
    ("version", "POST", "/message:send", {"Authorization": AUTH, "A2A_Version": "9.9"}, 400),
    ("401", "POST", "/message:send", {}, 401),
    ("rest", "GET", "/tasks/no-such-task", {"Authorization": AUTH}, 404),
]


@pytest.mark.parametrize(("what", "method", "path", "headers", "status"), EARLY,
                         ids=[e[0] for e in EARLY])
async def test_an_early_answer_closes_the_connection(
        server: RunningServer, what: str, method: str, path: str,
        headers: dict[str, str], status: int) -> None:
    with trio.fail_after(10):
        stream = await connect(server)
        async with stream:
            head = request_head(method, path, Content_Type="application/json",
                                Content_Length=1000, **headers)
            await stream.send_all(head + b"{" * 100)  # a tenth of the body
            buffer = bytearray()
            answer = await read_answer(stream, buffer)
            assert answer.status == status, answer.body
            try:  # the rest of the body, then the next request
                await stream.send_all(b"{" * 900 + request_head("GET", CARD))
            except trio.BrokenResourceError:
                pass  # already closed by the server: fine
            # The server closes its end instead of leaving the connection wedged.
            rest = await wait_closed(stream)
            assert bytes(buffer) + rest == b""  # and answers nothing more on it
            assert answer.headers.get("connection") == "close"
        await trio.testing.wait_all_tasks_blocked()
        assert close_wait_count(server.port) == 0


async def test_a_content_length_over_the_limit_is_refused_at_once(server: RunningServer) -> None:
    with trio.fail_after(10):
        stream = await connect(server)
        async with stream:
            head = request_head("POST", "/message:send", Authorization=AUTH,
                                Content_Type="application/json", Content_Length=LIMIT + 1)
            await stream.send_all(head + b"{" * 100)
            answer = await read_answer(stream)
            assert answer.status == 413
            assert answer.headers.get("connection") == "close"
            assert json.loads(answer.body)["error"]["code"] == 413
            assert await wait_closed(stream) == b""


async def test_a_complete_request_keeps_its_connection(server: RunningServer) -> None:
    """Only an answer that leaves part of a body unread closes the connection."""
    body = json.dumps({"message": user_message("echo hi")}).encode()
    with trio.fail_after(10):
        stream = await connect(server)
        async with stream:
            buffer = bytearray()
            for _ in range(3):
                head = request_head("POST", "/message:send", Authorization=AUTH,
                                    Content_Type="application/json", A2A_Version="1.0",
                                    Content_Length=len(body))
                await stream.send_all(head + body)
                answer = await read_answer(stream, buffer)
                assert answer.status == 200, answer.body
                assert "connection" not in answer.headers
                await stream.send_all(request_head("GET", CARD))
                assert (await read_answer(stream, buffer)).status == 200


BIG = 64 * 1024 * 1024  # more than loopback's socket buffers can hold (32 MiB + 4 MiB)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_the_limit_is_not_read(server: RunningServer, framing: str) -> None:
    """The server answers 413 and closes: the rest of a 64 MiB body is never taken."""
    if framing == "chunked":
        head = request_head("POST", "/message:send", Authorization=AUTH,
                            Content_Type="application/json", Transfer_Encoding="chunked")
        piece = b"10000\r\n" + b"{" * 0x10000 + b"\r\n"
    else:
        head = request_head("POST", "/message:send", Authorization=AUTH,
                            Content_Type="application/json", Content_Length=BIG)
        piece = b"{" * 0x10000
    answers: list[bytes] = []
    sent = 0
    with trio.fail_after(60):
        stream = await connect(server)
        async with stream, trio.open_nursery() as nursery:

            async def read_all() -> None:
                answers.append(await wait_closed(stream))

            nursery.start_soon(read_all)
            await stream.send_all(head)
            try:
                while sent < BIG:
                    await stream.send_all(piece)
                    sent += 0x10000
            except trio.BrokenResourceError:
                pass
    assert answers[0].startswith(b"HTTP/1.1 413 ")
    assert sent < BIG // 2, f"the server took {sent} bytes of a body it refused"


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


async def test_a_request_head_must_arrive_within_the_header_timeout(
        server: RunningServer) -> None:
    with trio.fail_after(10):
        stream = await connect(server)
        async with stream:
            # Idle between requests for longer than the header timeout is fine: that
            # is the keep-alive timeout's business.
            for _ in range(2):
                await stream.send_all(request_head("GET", CARD))
                assert (await read_answer(stream)).status == 200
                await trio.sleep(1.0)
            head = request_head("GET", CARD, X_Padding="p" * 200)
            sent = 0

            async def dribble() -> None:
                nonlocal sent
                try:
                    for i in range(len(head)):
                        await stream.send_all(head[i:i + 1])
                        sent += 1
                        await trio.sleep(0.05)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            async with trio.open_nursery() as nursery:
                started = trio.current_time()
                nursery.start_soon(dribble)
                assert await wait_closed(stream) == b""
                waited = trio.current_time() - started
                nursery.cancel_scope.cancel()
            assert sent < len(head)  # closed while the head was still incomplete
            assert waited >= 0.5


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_an_h2c_upgrade_the_client_closes_at_once_is_closed(
        server: RunningServer, method: str) -> None:
    """A request that asks for an h2c upgrade and whose client closes before the
    answer is written: the server closes its end. (hypercorn's HTTP/2 writer stopped
    at the close and the app's last `send` waited for it for good: the socket sat
    in CLOSE-WAIT, seen by the hostile-traffic run.)"""
    with trio.fail_after(10):
        stream = await connect(server)
        await stream.send_all(request_head(method, CARD, Connection="keep-alive, Upgrade",
                                           Upgrade="h2c"))
        await stream.send_eof()
        assert (await wait_closed(stream)).startswith(b"HTTP/1.1 101 ")
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert close_wait_count(server.port) == 0
