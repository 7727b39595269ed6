"""SSE streams over real loopback connections: a client going away ends its stream
at once (no task watches for it on HTTP/1.1), and events that are ready together
are written together."""

from __future__ import annotations

import json
from collections.abc import Callable

import trio
import trio.testing

from actors.event_feed import EventFeed
from protocol.models import StreamResponse
from protocol.sse import SSEDecoder
from runtime.http.sse import event_frames
from runtime.server import RunningServer
from tests.agents import Controls
from tests.conftest import Rpc, results, user_message, wait_state
from tests.http_face.wire import request_head


def _rpc_body(method: str, params: dict[str, object]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": params}).encode()


def _waiters(server: RunningServer, task_id: str) -> int:
    entry = server.store._entries[task_id]
    return 0 if entry.changed is None else entry.changed.statistics().tasks_waiting


async def test_client_going_away_ends_its_stream_at_once(
    server: RunningServer, rpc: Rpc, controls: Controls
) -> None:
    with trio.fail_after(10):
        task = (await rpc.call("SendMessage", {"message": user_message("wait"),
                                               "configuration": {"returnImmediately": True}}))
        task_id = task["task"]["id"]
        body = _rpc_body("SubscribeToTask", {"id": task_id})
        stream = await trio.open_tcp_stream(server.host, server.port)
        await stream.send_all(request_head("POST", "/", Content_Type="application/json",
                                           A2A_Version="1.0", Content_Length=len(body)) + body)
        seen = b""
        while b"data: " not in seen:
            seen += await stream.receive_some(65536)
        assert b"text/event-stream" in seen
        await wait_for(lambda: _waiters(server, task_id) == 1)  # the stream waits in the store
        assert len(server.calls._calls) == 1  # type: ignore[union-attr]
        await stream.aclose()
        await wait_for(lambda: not server.calls._calls)  # type: ignore[union-attr]
        assert _waiters(server, task_id) == 0  # the call has ended and let go of its wait
        controls.gate.set()  # the task itself goes on
        await wait_state(server, task_id, "TASK_STATE_COMPLETED")
    assert controls.cancelled == []


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll `condition` (server internals that have no event to wait on) for 5 s."""
    for _ in range(500):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("not within 5 s")


async def test_events_ready_together_are_one_chunk(server: RunningServer, rpc: Rpc) -> None:
    with trio.fail_after(10):
        full = await rpc.stream("SendStreamingMessage", {"message": user_message("chunks 5")})
        task_id = results(full)[0]["task"]["id"]
        first, events = await server.service.subscribe(task_id, last_event_id=int(full[0].id or 0))
        assert first is None and isinstance(events, EventFeed)
        chunks = [c async for c in event_frames(
            first, events, lambda ev: ev.model_dump_json(by_alias=True).encode(),
            lambda err: b"{}")]
    assert len(chunks) == 1  # the whole log was committed: one write
    decoded = SSEDecoder().feed(chunks[0])
    assert [e.id for e in decoded] == [e.id for e in full[1:]]
    assert [StreamResponse.model_validate_json(e.data) for e in decoded] == [
        StreamResponse.model_validate(r) for r in results(full)[1:]]


async def test_feed_yields_events_one_by_one_to_other_consumers(
    server: RunningServer, rpc: Rpc
) -> None:
    with trio.fail_after(10):
        full = await rpc.stream("SendStreamingMessage", {"message": user_message("chunks 3")})
        task_id = results(full)[0]["task"]["id"]
        _, events = await server.service.subscribe(task_id, last_event_id=int(full[0].id or 0))
        seqs = [ev.seq async for ev in events if ev is not None]
    assert [str(s) for s in seqs] == [e.id for e in full[1:]]


async def test_streams_write_in_turns_and_a_waiting_one_gives_its_turn_up() -> None:
    from runtime.http import turns

    entered: list[int] = []
    release = trio.Event()

    async def write(i: int, stuck: bool) -> None:
        async with turns.Turn():
            entered.append(i)
            if stuck:  # a full socket: the TCP layer gives the turn up before waiting
                turns.yield_turn()
            await release.wait()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for i in range(turns.TURNS):
                nursery.start_soon(write, i, False)
            nursery.start_soon(write, turns.TURNS, False)
            await trio.testing.wait_all_tasks_blocked()
            assert len(entered) == turns.TURNS  # one more waits for a turn
            release.set()
        entered.clear()
        release = trio.Event()
        async with trio.open_nursery() as nursery:
            for i in range(turns.TURNS + 5):
                nursery.start_soon(write, i, True)
            await trio.testing.wait_all_tasks_blocked()
            assert len(entered) == turns.TURNS + 5  # stuck writers hold no turn
            release.set()
