"""A worker finds work when pushes are lost (polling on the heartbeat's hint), and
a stopping server drains its workers; on virtual time with the real store,
dispatcher, link endpoint and worker trees (only the wire is in process)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from actors.dispatcher import DrainPush, NotClaimable, WorkerInfo
from runtime.link.local import open_in_process_link
from runtime.store import open_memory_backend
from runtime.worker import Connection, WorkerConfig, open_worker
from tests.sim import connect_losing_pushes, open_sim_server
from tests.test_system_faults import TTL, slow_agent


async def test_a_worker_that_hears_no_offers_claims_at_its_next_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ids = itertools.count(1)
    with trio.fail_after(300):
        async with open_sim_server(open_memory_backend, ids) as server, open_worker(
            "in-process", token=None, agent=slow_agent(["done"], 0), concurrency=2,
            name="deaf", worker_id="deaf",
            connect=connect_losing_pushes(server.endpoint, lambda push: True),
            config=WorkerConfig(seed=1),
        ) as worker:
            await worker.wait_registered()
            interval = TTL / 3  # what the server tells it at registration
            start = trio.current_time()
            await trio.sleep(1)
            first, second = await server.submit(), await server.submit()
            # offered (and lost on the way); nothing runs until the next heartbeat
            await trio.sleep(interval - 2)
            assert worker.statistics().started == 0
            done = [await server.wait_done(t) for t in (first, second)]
            assert trio.current_time() == start + interval  # claimed at that heartbeat
            assert [a.parts[0].text for d in done for a in d.artifacts or ()] == ["done"] * 2
            assert worker.connection is not None and worker.connection.claimer is not None
            assert worker.connection.claimer.polled == 2
            # nothing waits now: the next heartbeat's hint is 0 and no claim is made
            claims = server.dispatcher.statistics().claims
            await trio.sleep(interval * 2)
            assert server.dispatcher.statistics().claims == claims


async def test_claim_next_takes_the_best_task_routed_to_the_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ids = itertools.count(1)
    async with open_sim_server(open_memory_backend, ids) as server:
        d = server.dispatcher
        d.register(WorkerInfo("w1", max_concurrent=1))
        with pytest.raises(NotClaimable, match="no task waits"):
            await d.claim_next("w1")
        task = await server.submit()
        assert d.queued_for("w1") == 1
        claim = await d.claim_next("w1")
        assert claim.task_id == task and d.queued_for("w1") == 0
        await server.submit()  # the worker is full now
        with pytest.raises(NotClaimable):
            await d.claim_next("w1")


async def test_a_draining_dispatcher_offers_nothing_and_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ids = itertools.count(1)
    async with open_sim_server(open_memory_backend, ids) as server:
        d = server.dispatcher
        early = d.register(WorkerInfo("w1", max_concurrent=2))
        d.drain("maintenance")
        pushed = early.receive_pushes.receive_nowait()
        assert pushed == DrainPush("maintenance")
        await server.submit()
        with pytest.raises(trio.WouldBlock):  # no offer went out
            early.receive_pushes.receive_nowait()
        reply = await d.heartbeat("w1", [])
        assert reply.drain == "maintenance" and reply.queued == 1
        late = d.register(WorkerInfo("w2", max_concurrent=1))
        assert late.receive_pushes.receive_nowait() == DrainPush("maintenance")


async def test_a_closed_in_process_link_is_one_warning_not_a_traceback(
    autojump_clock: trio.testing.MockClock, caplog: Any,
) -> None:
    """LinkDown out of the link's own nursery reaches the connection tree as itself:
    it logs why and reconnects; the supervisor restarts the subtree without a
    traceback (no failure to report)."""
    ids = itertools.count(1)
    links: list[Any] = []

    async with open_sim_server(open_memory_backend, ids) as server:

        @contextlib.asynccontextmanager
        async def connect() -> AsyncIterator[Connection]:
            async with open_in_process_link(server.endpoint, durable_acks=True) as link:
                links.append(link)
                yield link

        async with open_worker("in-process", token=None, agent=slow_agent(["x"], 0),
                               name="w", worker_id="w", connect=connect,
                               config=WorkerConfig(seed=3)) as worker:
            await worker.wait_registered()
            caplog.clear()
            links[0].close()
            while worker.statistics().registrations < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
    records = [(r.name, r.levelname, r.getMessage()) for r in caplog.records
               if r.levelname in ("WARNING", "ERROR")]
    reconnecting = "the in-process link is closed; reconnecting"
    assert ("runtime.worker.process", "WARNING", reconnecting) in records
    assert all(r.exc_info is None for r in caplog.records), records
    assert not [r for r in records if r[1] == "ERROR"], records
