"""A retried task keeps its place in the queue (virtual time).

A task whose worker died is queued again by the reaper. It goes back where it
was — by priority, then by when it was first queued — not behind everything
submitted while it ran: otherwise recovery from a dead worker waits for the
whole backlog (183 s seen with a 90 s lease).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing

from actors.dispatcher import Dispatcher, Offer, RunRequest, WorkerInfo, WorkerSession
from actors.store_port import DispatchState, Route
from actors.task_store import ServerTaskStore
from protocol.models import (
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.store import open_memory_backend

T0 = 1_700_000_000.0
TTL = 30.0


@attrs.define
class Env:
    store: ServerTaskStore
    dispatcher: Dispatcher
    nursery: trio.Nursery
    n: int = 0

    async def task(self, priority: int = 0) -> str:
        self.n += 1
        task_id = f"t{self.n}"
        msg = Message(message_id=f"m{self.n}", role=Role.USER, parts=[Part(text="hi")],
                      task_id=task_id, context_id="c")
        await self.store.create_task(
            Task(id=task_id, context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
                 history=[msg]),
            owner="", dispatch=DispatchState(route=Route(priority=priority)))
        await self.dispatcher.submit(RunRequest(task_id=task_id))
        return task_id


@pytest.fixture
async def env(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Env]:
    async with open_memory_backend() as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend, clock=lambda: T0 + trio.current_time())
        await nursery.start(store.run)
        dispatcher = Dispatcher(store, lease_ttl=TTL, reap_interval=1.0, max_attempts=3)
        await nursery.start(dispatcher.run)
        yield Env(store, dispatcher, nursery)
        nursery.cancel_scope.cancel()


def completed(task_id: str) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="c", status=TaskStatus(state=TaskState.COMPLETED)))


def offers(session: WorkerSession) -> list[str]:
    out = []
    while True:
        try:
            push = session.receive_pushes.receive_nowait()
        except trio.WouldBlock:
            return out
        if isinstance(push, Offer):
            out.append(push.task_id)


async def test_a_retried_task_keeps_its_place_by_priority_and_age(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    d = env.dispatcher
    d.register(WorkerInfo("dead", max_concurrent=1))
    busy = d.register(WorkerInfo("busy", max_concurrent=1))
    retried = await env.task()
    lost = await d.next_claim("dead")
    assert lost.task_id == retried
    blocker = await env.task()
    running = await d.next_claim("busy")
    # submitted while `retried` ran: two of the same priority, one higher
    later = [await env.task(), await env.task()]
    high = await env.task(priority=5)
    d.unregister("dead")  # no heartbeat, no release
    with trio.fail_after(TTL * 3):
        while d.statistics().expired == 0:  # "busy" heartbeats and keeps its lease
            await trio.sleep(TTL / 3)
            reply = await d.heartbeat("busy", [(blocker, running.attempt_id)])
            assert [r[0] for r in reply.renewed] == [blocker]
    assert d.statistics().queued == 4
    offers(busy)
    assert not await d.release(blocker, running.attempt_id, (completed(blocker),))
    # the freed slot is offered the best task: the higher priority first...
    assert offers(busy) == [high]
    order = []
    for _ in range(4):
        with trio.fail_after(1):
            claim = await d.next_claim("busy")
        order.append(claim.task_id)
        if claim.task_id == high:
            pending = offers(busy)
        assert not await d.release(claim.task_id, claim.attempt_id, (completed(claim.task_id),))
        if claim.task_id == high:
            # ...then the retried one, ahead of the later tasks of its priority
            assert pending == [] and offers(busy) == [retried]
    assert order == [high, retried, *later]
    record = await env.store.get_task(retried)
    assert record is not None and record.dispatch.attempts == 2
