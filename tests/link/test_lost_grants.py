"""A heartbeat ends the leases its worker does not run, except those granted on its
own connection, including one whose grant is still being built (an in-process link
serves a heartbeat while a claim of the same worker reads the task's context).
The real core on virtual time; frames handed to the server's `LinkConnection`."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

import runtime.link.connection as connection_module
from protocol import worker_link as wl
from runtime.link.local import open_in_process_link
from tests.sim import open_sim_server


def register(worker_id: str, *, context_history: bool) -> wl.RegisterBody:
    return wl.RegisterBody(worker_id=worker_id, name=worker_id, hostname="h",
                           max_concurrent_tasks=2, agents=["echo"],
                           context_history=context_history)


def beat(worker_id: str) -> wl.HeartbeatBody:
    return wl.HeartbeatBody(worker_id=worker_id, agent="echo", status="idle", active_tasks=0)


async def test_a_grant_being_built_is_not_taken_for_lost(
        autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    reading, go_on = trio.Event(), trio.Event()
    real = connection_module.context_messages

    async def slow_context(*args: Any) -> Any:
        reading.set()
        await go_on.wait()
        return await real(*args)

    monkeypatch.setattr(connection_module, "context_messages", slow_context)
    async with open_sim_server(ids=itertools.count(1)) as server, \
            open_in_process_link(server.endpoint, durable_acks=True) as link:
        conn = link.connection
        await conn.handle("register", register("w", context_history=True))
        task_id = await server.submit()
        async with trio.open_nursery() as nursery:
            grants: list[Any] = []

            async def claim() -> None:
                grants.append(await conn.handle("claim", wl.ClaimBody(worker_id="w",
                                                                      task_id=task_id)))

            nursery.start_soon(claim)
            await reading.wait()  # stored, its answer not yet built
            await conn.handle("heartbeat", beat("w"))
            go_on.set()
        record = await server.store.get_task(task_id)
        assert grants[0].granted and record is not None
        assert record.dispatch.lease is not None  # kept: its answer was on the way
        assert record.dispatch.lease.attempt_id == grants[0].attempt_id


async def test_a_lease_granted_on_another_connection_ends_at_the_first_heartbeat(
        autojump_clock: trio.testing.MockClock) -> None:
    async with open_sim_server(ids=itertools.count(1)) as server:
        task_id = await server.submit()
        async with open_in_process_link(server.endpoint, durable_acks=True) as first:
            await first.connection.handle("register", register("w", context_history=False))
            grant = await first.connection.handle("claim", wl.ClaimBody(worker_id="w",
                                                                        task_id=task_id))
            assert isinstance(grant, wl.ClaimReply) and grant.granted  # and then lost
        async with open_in_process_link(server.endpoint, durable_acks=True) as second:
            await second.connection.handle("register", register("w", context_history=False))
            held = await server.store.get_task(task_id)
            assert held is not None and held.dispatch.lease is not None
            await second.connection.handle("heartbeat", beat("w"))
        record = await server.store.get_task(task_id)
        assert record is not None and record.dispatch.lease is None
        assert record.dispatch.run_attempts == 0 and trio.current_time() == 0
        assert server.dispatcher.statistics().queued == 1  # queued again, at once
