"""TrioBridge on its own: calls from plain threads into a trio nursery."""

from __future__ import annotations

import threading
from typing import Any

import trio

from runtime.grpc.bridge import TrioBridge


async def forever(send: trio.MemorySendChannel[Any]) -> None:
    await trio.sleep_forever()


async def produce(n: int, send: trio.MemorySendChannel[Any]) -> None:
    for i in range(n):
        await send.send(i)


async def test_items_cross_in_order_and_the_buffer_bounds_what_waits() -> None:
    async with trio.open_nursery() as nursery:
        bridge = TrioBridge(nursery, trio.lowlevel.current_trio_token(), buffer=3)
        handle = await trio.to_thread.run_sync(bridge.open_call, lambda s: produce(10, s))
        while True:  # nobody reads yet: 3 queued, and the producer waits
            if bridge.statistics().blocked == 1:
                break
            await trio.sleep(0.01)
        assert bridge.statistics().queued == 3
        items = await trio.to_thread.run_sync(list, handle)
        assert items == list(range(10))
        stats = bridge.statistics()
    assert (stats.active, stats.started, stats.cancelled, stats.queued) == (0, 1, 0, 0)


async def test_cancel_from_another_thread_ends_the_call() -> None:
    async with trio.open_nursery() as nursery:
        bridge = TrioBridge(nursery, trio.lowlevel.current_trio_token())
        handle = await trio.to_thread.run_sync(bridge.open_call,
                                               forever)
        thread = threading.Thread(target=handle.cancel)
        thread.start()
        assert await trio.to_thread.run_sync(list, handle) == []
        thread.join()
        handle.cancel()  # again, after the end: harmless
    assert bridge.statistics().cancelled == 1


async def test_no_call_starts_once_closed() -> None:
    async with trio.open_nursery() as nursery:
        bridge = TrioBridge(nursery, trio.lowlevel.current_trio_token())
        bridge.close()
        assert await trio.to_thread.run_sync(bridge.open_call, lambda s: produce(1, s)) is None
    assert bridge.statistics().started == 0


def test_a_finished_run_starts_nothing_and_ends_open_calls() -> None:
    kept: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bridge = TrioBridge(nursery, trio.lowlevel.current_trio_token())
            kept["bridge"] = bridge
            kept["handle"] = await trio.to_thread.run_sync(bridge.open_call,
                                                           forever)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert kept["bridge"].open_call(lambda s: produce(1, s)) is None
    kept["handle"].cancel()  # no RunFinishedError escapes
    assert list(kept["handle"]) == []
