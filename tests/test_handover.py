"""The dispatcher's handover rules on virtual time, two replicas on one store (the
cluster of tests/test_dispatch_replicas.py): a draining replica grants nothing; a
task given back, an embedded worker's task at a graceful stop and a grant lost with
its connection are queued again at once, the attempt not counted; leases whose
grants may still be on the way are left alone."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.dispatcher import NotClaimable, StaleAttempt, WorkerInfo
from actors.store_port import TaskRecord
from tests.test_dispatch_replicas import Cluster, cluster, settle


async def stored(c: Cluster, task_id: str) -> TaskRecord:
    record = await c.hub.shared.get_task(task_id)
    assert record is not None
    return record


def last_note(record: TaskRecord) -> str:
    status = record.task.status
    return "".join(p.text or "" for p in status.message.parts) if status.message else ""


async def test_a_draining_replica_grants_no_claim_and_the_other_does(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        c.b.dispatcher.register(WorkerInfo("wb"))
        c.a.dispatcher.drain("stopping")
        await c.a.task("t1")
        await settle()
        with pytest.raises(NotClaimable, match="draining"):
            await c.a.dispatcher.claim("wa", "t1")
        with pytest.raises(NotClaimable):  # a poll answers at once, it does not spin
            await c.a.dispatcher.claim_next("wa")
        with trio.move_on_after(5):
            await c.a.dispatcher.next_claim("wa")
            pytest.fail("a draining replica granted a claim")
        claim = await c.b.dispatcher.claim("wb", "t1")  # the task is still queued there
        assert claim.task_id == "t1"


async def test_a_task_given_back_is_queued_again_at_once_uncounted(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa"))
        c.b.dispatcher.register(WorkerInfo("wb"))
        await c.a.task("t1")
        claim = await c.a.dispatcher.claim("wa", "t1")
        assert await c.a.dispatcher.give_back("wa", "t1", claim.attempt_id) is False
        record = await stored(c, "t1")
        assert record.dispatch.lease is None and record.dispatch.run_attempts == 0
        assert last_note(record) == ("worker 'wa' gave the task back (it is stopping); "
                                     "retrying (attempt 1 of 3)")
        assert await c.a.dispatcher.give_back("wa", "t1", claim.attempt_id) is True  # resent
        again = await c.b.dispatcher.next_claim("wb")  # queued on the other replica too
        assert again.task_id == "t1" and trio.current_time() == 0
        with pytest.raises(StaleAttempt):
            await c.a.dispatcher.give_back("wa", "t1", claim.attempt_id + "-old")


async def test_a_graceful_stop_queues_only_this_replicas_embedded_tasks(
        autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("local-a", in_process=True))
        c.b.dispatcher.register(WorkerInfo("local-b", in_process=True))
        await c.a.task("ta")
        await c.b.task("tb")
        await c.a.dispatcher.claim("local-a", "ta")
        await c.b.dispatcher.claim("local-b", "tb")
        await settle()
        assert await c.a.dispatcher.requeue_in_process() == 1
        assert (await stored(c, "ta")).dispatch.lease is None
        assert (await stored(c, "tb")).dispatch.lease is not None  # b's own worker runs it


async def test_a_lease_the_worker_does_not_run_ends_unless_granted_on_its_connection(
        autojump_clock: trio.testing.MockClock) -> None:
    """wa claims t1 and t2 through a; the answer of t1 is lost with that connection.
    wa registers on b and heartbeats t2 only: t1 is queued again at once. A lease
    granted on the heartbeat's own connection (its answer may be on the way) and a
    heartbeat that does not say what its connection was granted are left alone."""
    async with cluster() as c:
        c.a.dispatcher.register(WorkerInfo("wa", max_concurrent=3))
        for t in ("t1", "t2", "t3"):
            await c.a.task(t)
        lost = await c.a.dispatcher.claim("wa", "t1")
        kept = await c.a.dispatcher.claim("wa", "t2")
        in_flight = await c.a.dispatcher.claim("wa", "t3")
        await settle()
        c.b.dispatcher.register(WorkerInfo("wa", max_concurrent=3))
        await c.b.dispatcher.heartbeat("wa", [("t2", kept.attempt_id)])  # an older caller
        assert (await stored(c, "t1")).dispatch.lease is not None
        reply = await c.b.dispatcher.heartbeat("wa", [("t2", kept.attempt_id)],
                                               granted_here={in_flight.attempt_id})
        assert [r[0] for r in reply.renewed] == ["t2"]
        record = await stored(c, "t1")
        assert record.dispatch.lease is None and record.dispatch.run_attempts == 0
        assert last_note(record) == (f"worker 'wa' never received attempt "
                                     f"'{lost.attempt_id}' (its grant was lost); "
                                     "retrying (attempt 1 of 3)")
        assert (await stored(c, "t3")).dispatch.lease is not None
        assert trio.current_time() == 0  # at once, not after the lease
