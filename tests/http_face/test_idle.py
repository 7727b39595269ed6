"""The idle timer of keep-alive connections (runtime.http.idle): one task per
connection, closing exactly when hypercorn's own per-request timer would; a request
head's timeout; and the timer ending with its connection."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from runtime.http.idle import IdleTimer
from runtime.http.serve import hypercorn_config, serve_asgi
from runtime.server import _listen


@attrs.define
class FakeServer:
    """What the timer uses of hypercorn's TCPServer."""

    keep_alive: float
    closed_at: list[float] = attrs.Factory(list)
    context: Any = None
    config: Any = None

    def __attrs_post_init__(self) -> None:
        self.context = attrs.make_class("Ctx", {"terminated": attrs.field()})(trio.Event())
        self.config = attrs.make_class("Cfg", {"keep_alive_timeout": attrs.field()})(
            self.keep_alive)

    async def _idle_timeout(self) -> None:  # the action hypercorn hands over
        raise AssertionError("the timer never runs hypercorn's per-request task")

    async def _initiate_server_close(self) -> None:
        self.closed_at.append(trio.current_time())


class Group:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery


async def test_idle_connection_closes_after_the_keep_alive_timeout(autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=10)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)  # connection opened: idle
        await trio.sleep(4)
        await timer.stop()  # a request at t=4 ...
        await trio.sleep(30)  # ... that takes longer than the timeout
        assert server.closed_at == []
        await timer.restart(Group(nursery), server._idle_timeout)  # answered at t=34
        await trio.sleep(5)
        await timer.stop()  # the next request at t=39, answered at t=40
        await trio.sleep(1)
        await timer.restart(Group(nursery), server._idle_timeout)
    assert server.closed_at == [50.0]  # idle from t=40, closed at t=40 + 10


async def test_shutdown_closes_an_idle_connection_at_once(autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=75)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await trio.sleep(3)
        server.context.terminated.set()
    assert server.closed_at == [3.0]


async def test_shutdown_waits_for_the_request_in_flight(autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=75)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await trio.sleep(1)
        await timer.stop()
        await trio.sleep(1)
        server.context.terminated.set()  # at t=2, mid-request
        await trio.sleep(5)
        assert server.closed_at == []
        await timer.restart(Group(nursery), server._idle_timeout)  # answered at t=7
    assert server.closed_at == [7.0]


async def test_a_stop_before_the_watcher_runs_still_holds(autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=1)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await timer.stop()  # the watcher has not started yet
        await trio.sleep(10)
        assert server.closed_at == []
        await timer.restart(Group(nursery), server._idle_timeout)
    assert server.closed_at == [11.0]
    assert math.isclose(trio.current_time(), 11.0)


async def test_a_request_head_has_the_header_timeout_from_its_first_byte(
        autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=10)
    timer = IdleTimer(header_timeout=2)
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)  # idle from t=0
        await trio.sleep(3)
        timer.data_received()  # the first byte of a head at t=3
        await trio.sleep(1)
        timer.data_received()  # more of it: the deadline stays
    assert server.closed_at == [5.0]  # 3 + 2, long before the keep-alive's 10


async def test_a_complete_head_ends_the_header_timeout(autojump_clock: Any) -> None:
    server = FakeServer(keep_alive=10)
    timer = IdleTimer(header_timeout=2)
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        timer.data_received()
        await trio.sleep(1)
        await timer.stop()  # the head is complete at t=1
        timer.data_received()  # the body
        await trio.sleep(20)
        assert server.closed_at == []
        await timer.restart(Group(nursery), server._idle_timeout)  # answered at t=21
    assert server.closed_at == [31.0]  # then the keep-alive timeout again


@pytest.mark.parametrize("busy", [False, True])
async def test_the_timer_ends_with_its_connection(autojump_clock: Any, busy: bool) -> None:
    """Once the read loop has ended the timer leaves at once, closing nothing itself:
    hypercorn closes the socket when the connection's tasks are done."""
    server = FakeServer(keep_alive=75)
    timer = IdleTimer(header_timeout=20)
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await trio.sleep(1)
        if busy:
            await timer.stop()
        timer.connection_lost()  # at t=1
    assert trio.current_time() == 1.0
    assert server.closed_at == []
    await timer.restart(Group(nursery), server._idle_timeout)  # a late call changes nothing
    assert server.closed_at == []


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def serve(keep_alive: float) -> AsyncIterator[tuple[str, int]]:
    config = hypercorn_config()
    config.keep_alive_timeout = keep_alive
    sock = _listen("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_asgi(app, sock, config=config,
                                                           task_status=task_status))
        yield host, port
        nursery.cancel_scope.cancel()


async def get(stream: trio.SocketStream) -> bytes:
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = b""
    while not reply.endswith(b"ok"):
        data = await stream.receive_some(4096)
        assert data, "the server closed a connection in use"
        reply += data
    return reply


async def test_real_keep_alive_connections() -> None:
    """Real sockets: a connection in use stays open past the timeout; one left idle
    is closed by the server."""
    with trio.fail_after(20):
        async with serve(keep_alive=1.0) as (host, port):
            busy = await trio.open_tcp_stream(host, port)
            idle = await trio.open_tcp_stream(host, port)
            async with busy, idle:
                assert (await get(idle)).startswith(b"HTTP/1.1 200")
                for _ in range(12):  # 2.4 s of requests 0.2 s apart, on a 1 s timeout
                    assert (await get(busy)).startswith(b"HTTP/1.1 200")
                    await trio.sleep(0.2)
                assert await idle.receive_some(4096) == b""  # closed by the server


async def test_a_parked_timer_ends_its_task_and_times_again_once_idle(
    autojump_clock: Any,
) -> None:
    """A stream parks the timer: no task waits alongside it; once the response is
    done the keep-alive timeout runs again from then."""
    server = FakeServer(keep_alive=10)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await trio.sleep(1)
        await timer.stop()  # a request (a stream) at t=1
        timer.park()
        await trio.testing.wait_all_tasks_blocked()
        assert len(nursery.child_tasks) == 0  # the timer's task has ended
        await trio.sleep(100)  # the stream runs past any timeout
        assert server.closed_at == []
        await timer.restart(Group(nursery), server._idle_timeout)  # done at t=101
        assert len(nursery.child_tasks) == 1
    assert server.closed_at == [111.0]


async def test_a_timer_restarted_before_its_parked_task_ended_watches_on(
    autojump_clock: Any,
) -> None:
    server = FakeServer(keep_alive=10)
    timer = IdleTimer()
    async with trio.open_nursery() as nursery:
        await timer.restart(Group(nursery), server._idle_timeout)
        await trio.sleep(1)
        await timer.stop()
        timer.park()  # and the response ends before the task has run again
        await timer.restart(Group(nursery), server._idle_timeout)
    assert server.closed_at == [11.0]
