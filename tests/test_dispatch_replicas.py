"""Dispatchers of several replicas on one store, on virtual time.

Two server replicas, each a real `ServerTaskStore` and `Dispatcher`, share one
memory backend; the `Hub` of tests/store/test_sync.py plays the change feed
between them (PostgreSQL's LISTEN/NOTIFY does it for real in tests/test_replicas.py)
and can lose notifications on purpose. Fakes at the port only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

from actors.a2a_service import A2AService
from actors.dispatcher import (
    CancelPush,
    Claim,
    Dispatcher,
    NotClaimable,
    RunRequest,
    WorkerInfo,
    WorkerSession,
)
from actors.store_port import DispatchState, Lease, Route
from actors.task_store import ServerTaskStore
from protocol.models import (
    CancelTaskRequest,
    Message,
    Part,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from tests.store.test_sync import Hub, Replica
from tests.test_dispatcher import status

T0 = 1_700_000_000.0
TTL = 30.0
RESCAN = 10.0


@attrs.define
class Side:
    """One replica: its store and dispatcher."""

    name: str
    store: ServerTaskStore
    dispatcher: Dispatcher

    async def task(self, task_id: str, route: Route = Route()) -> str:
        """Create and queue a task here, as SendMessage does."""
        msg = Message(message_id=f"m-{task_id}", role=Role.USER, parts=[Part(text="hi")],
                      task_id=task_id, context_id="c")
        await self.store.create_task(
            Task(id=task_id, context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
                 history=[msg]), owner="", dispatch=DispatchState(route=route))
        await self.dispatcher.submit(RunRequest(task_id=task_id))
        return task_id

    def queued(self) -> int:
        return self.dispatcher.statistics().queued


@attrs.define
class Cluster:
    hub: Hub
    a: Side
    b: Side
    nursery: trio.Nursery

    async def start(self, name: str, **options: object) -> Side:
        """Another dispatcher incarnation on replica `name`'s store (a restart)."""
        side = self.a if name == "a" else self.b
        dispatcher = make_dispatcher(side.store, name, **options)
        await self.nursery.start(dispatcher.run)
        return Side(name, side.store, dispatcher)


def make_dispatcher(store: ServerTaskStore, name: str, **options: object) -> Dispatcher:
    ids = iter(f"{name}-att{i}" for i in range(1, 1000))
    settings: dict[str, object] = dict(lease_ttl=TTL, reap_interval=1.0, max_attempts=3,
                                       rescan_interval=RESCAN, replica_id=name)
    settings.update(options)
    return Dispatcher(store, new_id=lambda: next(ids), **settings)  # type: ignore[arg-type]


@asynccontextmanager
async def cluster(**options: object) -> AsyncIterator[Cluster]:
    hub = Hub()
    async with trio.open_nursery() as nursery:
        sides = []
        for name in ("a", "b"):
            replica = Replica(hub, name)
            store = ServerTaskStore(replica, clock=lambda: T0 + trio.current_time(),  # type: ignore[arg-type]
                                    poll_interval=5.0)
            await nursery.start(store.run)
            dispatcher = make_dispatcher(store, name, **options)
            await nursery.start(dispatcher.run)
            sides.append(Side(name, store, dispatcher))

        async def watchdog() -> None:  # the reapers tick forever otherwise
            await trio.sleep(3600)
            raise TimeoutError("the test ran for an hour of virtual time")

        nursery.start_soon(watchdog)
        yield Cluster(hub, sides[0], sides[1], nursery)
        nursery.cancel_scope.cancel()


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_a_task_sent_to_one_replica_is_claimed_by_a_worker_of_another(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        await c.b.task("t1")
        claim = await c.a.dispatcher.next_claim("wa")
        assert claim.task_id == "t1" and trio.current_time() == 0
        await settle()
        assert c.a.queued() == c.b.queued() == 0  # claimed: out of both queues
        stored = await c.hub.shared.get_task("t1")
        assert stored is not None and stored.dispatch.lease is not None
        assert stored.dispatch.lease.worker_id == "wa"


async def test_two_replicas_racing_a_claim_grant_it_once(
        autojump_clock: trio.testing.MockClock) -> None:
    """Both replicas queue the task; a worker on each claims it in the same tick: one
    claim is stored, the other is refused, and the task leaves both queues."""
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        c.b.dispatcher.register(WorkerInfo("wb"))
        await c.a.task("t1")
        await settle()
        assert c.a.queued() == c.b.queued() == 1
        results: dict[str, Claim | NotClaimable] = {}

        async def claim(side: Side, worker: str) -> None:
            try:
                results[worker] = await side.dispatcher.claim(worker, "t1")
            except NotClaimable as exc:
                results[worker] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim, c.a, "wa")
            nursery.start_soon(claim, c.b, "wb")
        won = {w: r for w, r in results.items() if isinstance(r, Claim)}
        assert len(won) == 1, results
        (winner, grant), = won.items()
        stored = await c.hub.shared.get_task("t1")
        assert stored is not None and stored.dispatch.lease is not None
        assert (stored.dispatch.lease.worker_id, stored.dispatch.lease.attempt_id) == (
            winner, grant.attempt_id)
        assert stored.dispatch.attempts == 1
        await settle()
        assert c.a.queued() == c.b.queued() == 0
        assert c.a.dispatcher.statistics().claims + c.b.dispatcher.statistics().claims == 1
        loser = c.b if winner == "wa" else c.a
        assert loser.store.statistics().failed_writes == 1  # its claim met the other's


async def test_a_claim_waits_for_its_commit_on_a_shared_store(
        autojump_clock: trio.testing.MockClock) -> None:
    """The grant goes out only once the claim is stored: a claim whose commit another
    replica's claim beat is refused, not granted."""
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        await c.a.task("t1")
        await settle()

        async def b_claims_first() -> None:
            del c.hub.before_commit["a"]
            head = await c.hub.shared.get_task("t1")
            assert head is not None
            await c.b.store.write("t1", (), dispatch=attrs.evolve(head.dispatch, lease=Lease(
                worker_id="wb", attempt_id="wb-x", expires_at=T0 + 100)))

        c.hub.before_commit["a"] = b_claims_first
        with pytest.raises(NotClaimable):
            await c.a.dispatcher.claim("wa", "t1")
        assert c.a.queued() == 0
        assert c.a.dispatcher.statistics().claims == 0


async def test_a_lost_notification_is_found_by_the_next_rescan(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        await trio.sleep(1.0)  # the rescans run at 10, 20, ... s
        c.hub.lose = 1  # the creation of t1
        await c.b.task("t1")
        claim = await c.a.dispatcher.next_claim("wa")
        assert claim.task_id == "t1"
        assert trio.current_time() == RESCAN


async def test_missed_changes_rescan_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        await trio.sleep(1.0)
        c.hub.lose = 1
        await c.b.task("t1")
        await settle()
        assert c.a.queued() == 0
        c.hub.listeners["a"].resync()  # the feed reconnected: changes may be lost
        await settle()
        assert c.a.queued() == 1 and trio.current_time() == 1.0


async def test_a_task_ended_elsewhere_leaves_the_queue(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        await c.a.task("t1", Route(worker="nobody"))
        await settle()
        assert c.b.queued() == 1
        await c.a.store.write("t1", ())  # not an end yet: still queued
        await settle()
        assert c.b.queued() == 1
        await c.a.store.write("t1", (status("t1", TaskState.CANCELED),))
        await settle()
        assert c.b.queued() == 0


def pushes(session: WorkerSession) -> list[object]:
    out: list[object] = []
    while True:
        try:
            out.append(session.receive_pushes.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_a_cancel_asked_of_another_replica_reaches_the_worker(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        session = c.a.dispatcher.register(WorkerInfo("wa"))
        await c.b.task("t1")
        claim = await c.a.dispatcher.next_claim("wa")
        await settle()  # B has heard of the claim
        pushes(session)
        assert await c.b.dispatcher.cancel("t1") is True  # stored with the task
        await settle()
        assert pushes(session) == [CancelPush("t1", claim.attempt_id, "canceled by request")]
        assert trio.current_time() == 0
        reply = await c.a.dispatcher.heartbeat("wa", [("t1", claim.attempt_id)])
        assert reply.cancel == (("t1", claim.attempt_id),)
        stored = await c.hub.shared.get_task("t1")
        assert stored is not None and stored.dispatch.cancel_requested
        # a restarted dispatcher on A still knows it
        again = await c.start("a")
        again.dispatcher.register(WorkerInfo("wa"))
        reply = await again.dispatcher.heartbeat("wa", [("t1", claim.attempt_id)])
        assert reply.cancel == (("t1", claim.attempt_id),)


async def test_cancel_task_asks_the_worker_that_claimed_the_task_meanwhile(
        autojump_clock: trio.testing.MockClock) -> None:
    """CancelTask on B finds the task queued (no worker holds it) and ends it, but a
    worker of A claims it before that write commits: the write is refused, and the
    cancellation is asked of that worker instead."""
    async with cluster() as c:
        session = c.a.dispatcher.register(WorkerInfo("wa"))
        await c.b.task("t1")
        await settle()
        claims: list[Claim] = []

        async def a_claims_first() -> None:
            del c.hub.before_commit["b"]
            claims.append(await c.a.dispatcher.claim("wa", "t1"))

        c.hub.before_commit["b"] = a_claims_first
        service = A2AService(c.b.store, c.b.dispatcher)

        async def worker_obeys() -> None:
            while True:
                for push in pushes(session):
                    if isinstance(push, CancelPush):
                        await c.a.dispatcher.release("t1", push.attempt_id,
                                                     (status("t1", TaskState.CANCELED),))
                        return
                await trio.sleep(0.1)

        c.nursery.start_soon(worker_obeys)
        task = await service.cancel_task(CancelTaskRequest(id="t1"))
        assert task.status.state is TaskState.CANCELED
        assert len(claims) == 1 and trio.current_time() < 1
        stored = await c.hub.shared.get_task("t1")
        assert stored is not None and stored.dispatch.lease is None
        assert stored.dispatch.last_attempt_id == claims[0].attempt_id


async def retry_statuses(store: ServerTaskStore, task_id: str) -> list[str]:
    texts = []
    for stored in await store.read_events(task_id, 0, 100):
        update = stored.event.status_update
        if update is not None and update.status.message is not None:
            texts.append(update.status.message.parts[0].text or "")
    return texts


async def test_a_lease_expired_is_requeued_once_by_the_reapers_of_both_replicas(
        autojump_clock: trio.testing.MockClock) -> None:
    """A worker of A dies holding a lease: both replicas know the lease, both reapers
    (every 1 s, in step) find it expired at their first tick after the TTL, and the
    task is queued again exactly once, then claimed by a worker of B."""
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        await c.a.task("t1")
        first = await c.a.dispatcher.next_claim("wa")
        await settle()
        assert c.b.dispatcher.statistics().leased == 1  # B knows A's lease
        c.a.dispatcher.unregister("wa")  # it dies: no heartbeat, no release
        c.b.dispatcher.register(WorkerInfo("wb"))
        second = await c.b.dispatcher.next_claim("wb")
        assert trio.current_time() == TTL + 1  # expired at 30 s; found at the 31 s tick
        assert second.attempt_id != first.attempt_id
        assert second.record.dispatch.attempts == 2
        await settle()
        expired = [side.dispatcher.statistics().expired for side in (c.a, c.b)]
        assert sum(expired) == 1, expired
        assert await retry_statuses(c.a.store, "t1") == [
            "the lease of worker 'wa' expired; retrying (attempt 2 of 3)"]
        assert c.a.dispatcher.statistics().leased == 1  # A follows B's claim
        assert c.a.queued() == c.b.queued() == 0


async def test_renewals_through_one_replica_keep_the_lease_on_every_replica(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        await c.a.task("t1")
        claim = await c.a.dispatcher.next_claim("wa")
        for beat in range(1, 11):  # 100 s, past three TTLs
            await trio.sleep(TTL / 3)
            if beat == 5:
                c.hub.lose = 1  # B misses one renewal: its reaper's write finds it
            reply = await c.a.dispatcher.heartbeat("wa", [("t1", claim.attempt_id)])
            assert [r[:2] for r in reply.renewed] == [("t1", claim.attempt_id)]
        await settle()
        assert sum(side.dispatcher.statistics().expired for side in (c.a, c.b)) == 0
        stored = await c.hub.shared.get_task("t1")
        assert stored is not None and stored.dispatch.lease is not None
        assert stored.dispatch.lease.attempt_id == claim.attempt_id
        assert stored.dispatch.lease.expires_at == T0 + 100 + TTL
        assert await retry_statuses(c.a.store, "t1") == []


async def test_a_restarted_replica_requeues_its_own_embedded_leases_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    """Embedded workers' leases name their replica: a restarted A ends its own at once,
    and leaves B's embedded worker's lease alone (B is still running it)."""
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("local-a", in_process=True))
        c.b.dispatcher.register(WorkerInfo("local-b", in_process=True))
        await c.a.task("t1", Route(worker="local-a"))
        await c.b.task("t2", Route(worker="local-b"))
        a_claim = await c.a.dispatcher.next_claim("local-a")
        b_claim = await c.b.dispatcher.next_claim("local-b")
        assert a_claim.record.dispatch.lease is not None
        assert a_claim.record.dispatch.lease.replica == "a"
        assert b_claim.record.dispatch.lease is not None
        assert b_claim.record.dispatch.lease.replica == "b"
        await trio.sleep(5)
        again = await c.start("a")  # A's process restarted: its embedded worker is gone
        assert trio.current_time() == 5
        t1 = await c.hub.shared.get_task("t1")
        assert t1 is not None and t1.dispatch.lease is None
        assert await retry_statuses(c.a.store, "t1") == [
            "worker 'local-a' stopped with the server; retrying (attempt 2 of 3)"]
        t2 = await c.hub.shared.get_task("t2")
        assert t2 is not None and t2.dispatch.lease == b_claim.record.dispatch.lease
        again.dispatcher.register(WorkerInfo("local-a", in_process=True))
        assert (await again.dispatcher.next_claim("local-a")).task_id == "t1"
        assert trio.current_time() == 5


async def test_a_resume_from_an_event_this_replica_has_not_heard_of_replays_it(
        autojump_clock: trio.testing.MockClock) -> None:
    """A client streamed events 1..3 from replica a and resumes on b with Last-Event-ID
    3, but b's cache holds the task as it was at event 1 and the notifications of a's
    later commits have not reached b yet (lost here; late in life). b reads the task
    again before deciding, and replays from event 4 instead of refusing the id."""
    async with cluster() as c:
        await c.a.task("t1")
        await settle()
        cached = await c.b.store.get_task("t1")  # b now holds it, at its first event
        assert cached is not None
        c.hub.lose = 100
        for _ in range(3):
            await c.a.store.write("t1", (status("t1", TaskState.WORKING),))
        latest = await c.a.store.get_task("t1")
        assert latest is not None and latest.seq == cached.seq + 3
        assert (await c.b.store.get_task("t1")).seq == cached.seq  # b has not heard
        service = A2AService(c.b.store, c.b.dispatcher)
        first, events = await service.subscribe("t1", last_event_id=latest.seq - 1)
        assert first is None
        with trio.fail_after(1):
            event = await events.__anext__()
        assert event is not None and event.seq == latest.seq
