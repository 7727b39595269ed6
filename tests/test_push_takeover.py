"""Push delivery across replicas on virtual time: one owner per config, takeover, fencing.

Two replicas share one memory backend through test_sync's `Hub` (the change feed
between them, what LISTEN/NOTIFY does for real in test_push_replicas.py), each with
a real `ServerTaskStore` on the store clock `T0 + trio.current_time()` and a real
`PushDelivery` posting to a fake sender (the port). Claims last 30 s and are renewed
(and other replicas' looked for) every 10 s, so every takeover time is exact.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from actors.push_delivery import PushDelivery, PushReply
from actors.store_port import PushClaim, TaskChange
from actors.task_store import ServerTaskStore
from protocol.models import TaskState, dump
from tests.store.test_sync import Hub, Replica
from tests.test_push_delivery import Call, FakeSender, artifact, config, create, status

T0 = 1_700_000_000.0
TIMEOUT = 600  # virtual seconds


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@attrs.define
class NotifyingReplica(Replica):
    """A replica whose released claims are reported to the others as changes of their
    tasks, as the PostgreSQL backend's release statement does; renewals can be made
    to fail (the database unreachable from this replica)."""

    renew_fails: bool = False

    async def release_push_claims(self, claims: Sequence[PushClaim], *,
                                  hand_over: bool = False) -> None:
        held = [c for c in claims
                if await self.hub.shared.get_push_claim(c.task_id, c.config_id) == c]
        await self.hub.shared.release_push_claims(claims)
        for claim in held if hand_over else ():
            record = await self.hub.shared.get_task(claim.task_id)
            assert record is not None
            change = TaskChange(task_id=claim.task_id, version=record.version, seq=record.seq)
            for name, listener in self.hub.listeners.items():
                if name != self.origin:
                    listener.changed(change)

    async def renew_push_claims(self, claims: Sequence[PushClaim], expires_at: float
                                ) -> list[PushClaim]:
        if self.renew_fails:
            raise OSError("the database cannot be reached")
        return await self.hub.shared.renew_push_claims(claims, expires_at)


@attrs.define
class Side:
    """One replica: its view of the backend, store, push delivery and receiver."""

    replica: NotifyingReplica
    store: ServerTaskStore
    push: PushDelivery
    sender: FakeSender
    scope: trio.CancelScope


@asynccontextmanager
async def open_hub() -> AsyncIterator[tuple[Hub, trio.Nursery]]:
    hub = Hub()
    async with trio.open_nursery() as nursery:
        yield hub, nursery
        nursery.cancel_scope.cancel()


async def start_side(hub: Hub, nursery: trio.Nursery, name: str, sender: FakeSender,
                     **options: Any) -> Side:
    """Start a replica's store and push delivery in a scope of their own (cancelled:
    the replica dies without releasing anything)."""
    replica = NotifyingReplica(hub, name)

    async def run(task_status: trio.TaskStatus[Side]) -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as inner:
                store = ServerTaskStore(replica, clock=lambda: T0 + trio.current_time(),  # type: ignore[arg-type]
                                        poll_interval=5.0)
                await inner.start(store.run)
                push = PushDelivery(store, sender, rng=random.Random(1), replica_id=name,
                                    claim_ttl=30.0, **options)
                await inner.start(push.run)
                task_status.started(Side(replica, store, push, sender, scope))

    return await nursery.start(run)  # type: ignore[no-any-return]


async def posted(store: ServerTaskStore, calls: list[Call], task_id: str = "t1"
                 ) -> list[tuple[float, int]]:
    """(virtual time, log sequence number) of each POST."""
    by_body = {json.dumps(dump(e.event), sort_keys=True): e.seq
               for e in await store.read_events(task_id, 0, 1000)}
    return [(c.at, by_body[json.dumps(c.body, sort_keys=True)]) for c in calls]


async def delivered_seq(hub: Hub) -> int:
    record = await hub.shared.get_push_config("t1", "c1")
    assert record is not None
    return record.delivered_seq


async def test_a_crashed_owner_is_taken_over_when_its_claim_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """a claims at 0 and renews at 10 and 20 (until 50), then dies at 25 without a word.
    b, started at 5, looks every 10 s: at 55 the claim has expired and b delivers the
    rest from the stored cursor. No event is lost or sent twice."""
    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            a = await start_side(hub, nursery, "a", FakeSender())
            rec = config()
            await create(a.store, configs=(rec,))
            a.push.watch(rec)
            await a.store.write("t1", [status("t1", TaskState.WORKING)])
            await trio.sleep(5)
            b = await start_side(hub, nursery, "b", FakeSender())
            await a.store.write("t1", [artifact("t1", 0)])  # b hears of it, a holds it
            await trio.sleep(21 - trio.current_time())
            claim = await hub.shared.get_push_claim("t1", "c1")
            assert claim is not None and claim.owner == "a"
            assert claim.expires_at == T0 + 50  # renewed at 20
            await trio.sleep(25 - trio.current_time())
            a.scope.cancel()  # a crashes: its claim stays until it expires
            await trio.sleep(1)
            await b.store.write("t1", [artifact("t1", 1)])
            await b.store.write("t1", [status("t1", TaskState.COMPLETED)])
            await trio.sleep(60 - trio.current_time())

            assert await posted(b.store, a.sender.calls) == [(0, 1), (0, 2), (5, 3)]
            assert await posted(b.store, b.sender.calls) == [(55, 4), (55, 5)]
            assert await delivered_seq(hub) == 5
            assert b.push.statistics().delivered == 2
            # everything went out: b released the config's claim
            assert await hub.shared.get_push_claim("t1", "c1") is None
            assert b.push.statistics().active_loops == 0


async def test_a_paused_owner_is_fenced_and_posts_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """a stops renewing (paused: its renewals come every 1000 s) while a POST of seq 2
    hangs until 60. Its claim expires at 30 and b takes over at its look at 35,
    posting seq 2 (the event in flight: the one event both send) and 3. When a's POST
    finally succeeds its progress is refused by the token, and a stops there."""
    release = trio.Event()

    async def hang_on_working(call: Call) -> PushReply:
        if "statusUpdate" in call.body and call.at > 0:
            await release.wait()
        return PushReply(200)

    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            a = await start_side(hub, nursery, "a", FakeSender(hang_on_working),
                                 renew_interval=1000.0)
            rec = config()
            await create(a.store, configs=(rec,))
            a.push.watch(rec)
            await trio.sleep(1)
            await a.store.write("t1", [status("t1", TaskState.WORKING)])  # seq 2: hangs
            await trio.sleep(5 - trio.current_time())
            b = await start_side(hub, nursery, "b", FakeSender())
            await trio.sleep(40 - trio.current_time())
            await b.store.write("t1", [status("t1", TaskState.COMPLETED)])
            await trio.sleep(60 - trio.current_time())
            assert await delivered_seq(hub) == 3
            release.set()
            await trio.sleep(100 - trio.current_time())

            assert await posted(b.store, a.sender.calls) == [(0, 1), (1, 2)]
            assert await posted(b.store, b.sender.calls) == [(35, 2), (40, 3)]
            assert await delivered_seq(hub) == 3  # a's late success moved nothing
            assert a.push.statistics().claims_lost == 1
            assert a.push.statistics().active_loops == 0


async def test_an_owner_whose_renewals_fail_stops_when_its_claim_lapses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """a cannot renew from 15 on: its claim (renewed at 10) lapses at 40 by its own clock,
    and it posts nothing more from then on, though nobody told it. b takes over at 41,
    as soon as a change of the task (a's write) is reported to it after the expiry."""
    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            a = await start_side(hub, nursery, "a", FakeSender())
            rec = config()
            await create(a.store, configs=(rec,))
            a.push.watch(rec)
            await trio.sleep(5)
            b = await start_side(hub, nursery, "b", FakeSender())
            await trio.sleep(15 - trio.current_time())
            a.replica.renew_fails = True
            await a.store.write("t1", [status("t1", TaskState.WORKING)])  # a posts it
            await trio.sleep(41 - trio.current_time())
            await a.store.write("t1", [status("t1", TaskState.COMPLETED)])  # a must not
            await trio.sleep(60 - trio.current_time())

            assert await posted(b.store, a.sender.calls) == [(0, 1), (15, 2)]
            assert await posted(b.store, b.sender.calls) == [(41, 3)]
            assert await delivered_seq(hub) == 3
            assert a.push.statistics().claims_lost == 1


async def test_a_graceful_stop_hands_the_config_over_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """a stops gracefully at 22 while a POST (seq 3) is in flight until 23: it waits for
    that POST and its progress, then releases the claim; the release reaches b through
    the change feed, and b delivers the rest at 23, long before the claim would have
    expired (50). Nothing is posted twice."""
    release = trio.Event()

    async def slow_artifact(call: Call) -> PushReply:
        if "artifactUpdate" in call.body:
            await release.wait()
        return PushReply(200)

    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            a = await start_side(hub, nursery, "a", FakeSender(slow_artifact))
            rec = config()
            await create(a.store, configs=(rec,))
            a.push.watch(rec)
            await trio.sleep(5)
            b = await start_side(hub, nursery, "b", FakeSender())
            await a.store.write("t1", [status("t1", TaskState.WORKING)])
            await trio.sleep(20 - trio.current_time())
            await a.store.write("t1", [artifact("t1", 0)])  # seq 3: in flight 20 .. 23
            await trio.sleep(22 - trio.current_time())
            await b.store.write("t1", [status("t1", TaskState.COMPLETED)])  # seq 4

            async def answer_at_23() -> None:
                await trio.sleep(1)
                release.set()

            nursery.start_soon(answer_at_23)
            await a.push.hand_over()
            assert trio.current_time() == 23
            assert a.push.statistics().claims_held == 0
            await trio.sleep(30 - trio.current_time())

            assert await posted(b.store, a.sender.calls) == [(0, 1), (5, 2), (20, 3)]
            assert await posted(b.store, b.sender.calls) == [(23, 4)]
            assert await delivered_seq(hub) == 4


async def test_a_restarted_run_claims_its_configs_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The supervisor restarts `PushDelivery.run` on the same object: the new run frees
    the claims the old one held and delivers from the cursor, on a one-process store
    too (no takeover to wait for)."""
    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            store = ServerTaskStore(hub.shared, clock=lambda: T0 + trio.current_time())
            await nursery.start(store.run)
            sender = FakeSender()
            push = PushDelivery(store, sender, rng=random.Random(1), replica_id="a")
            with trio.CancelScope() as first:
                async with trio.open_nursery() as inner:
                    await inner.start(push.run)
                    rec = config()
                    await create(store, configs=(rec,))
                    push.watch(rec)
                    await trio.sleep(1)
                    first.cancel()
            assert await hub.shared.get_push_claim("t1", "c1") is not None  # left behind
            await store.write("t1", [status("t1", TaskState.WORKING)])
            await nursery.start(push.run)
            await trio.sleep(1)
            assert await posted(store, sender.calls) == [(0, 1), (1, 2)]
            assert push.statistics().claims_held == 1


async def test_a_replica_restarted_under_its_id_takes_its_configs_back_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """a crashes at 25 holding t1's config (claimed until 50) and starts again at 30 under
    the same replica id: it frees its previous incarnation's claims and delivers at 30,
    without waiting for the expiry, and leaves b's config (t2) alone."""
    with trio.fail_after(TIMEOUT):
        async with open_hub() as (hub, nursery):
            a = await start_side(hub, nursery, "a", FakeSender())
            b = await start_side(hub, nursery, "b", FakeSender())
            for side, task_id in ((a, "t1"), (b, "t2")):
                rec = config(task_id)
                await create(side.store, task_id, configs=(rec,))
                side.push.watch(rec)
            await trio.sleep(25)
            a.scope.cancel()
            await b.store.write("t1", [status("t1", TaskState.WORKING)])
            await trio.sleep(30 - trio.current_time())
            again = await start_side(hub, nursery, "a", FakeSender())
            await trio.sleep(1)

            assert await posted(b.store, again.sender.calls) == [(30, 2)]
            assert [c.at for c in b.sender.calls] == [0]  # t2's first event, nothing of t1
            claim = await hub.shared.get_push_claim("t2", "c1")
            assert claim is not None and claim.owner == "b"
