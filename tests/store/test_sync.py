"""Replicas keeping their caches in step (actors/task_sync.py), on virtual time.

Two `ServerTaskStore`s share one memory backend, each through a `Replica` view
with an origin of its own; a `Hub` plays the change feed between them (what
PostgreSQL's LISTEN/NOTIFY does for real in test_replicas.py) and can lose
notifications on purpose. Fakes at the port only: the stores are the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

from actors.store_port import (
    ChangeFeed,
    ChangeListener,
    ConflictError,
    DispatchState,
    Lease,
    TaskBackend,
    TaskChange,
    TaskRecord,
    TaskWrite,
)
from actors.task_store import ServerTaskStore
from protocol.models import (
    Artifact,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.store import MemoryBackend

POLL = 5.0


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


def chunk(task_id: str, i: int) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="ctx", append=i > 0,
        artifact=Artifact(artifact_id="a", parts=[Part(text=str(i))])))


class Hub:
    """The change feed between replicas: each commit is told to the other replicas'
    listeners, unless the hub was told to lose it."""

    def __init__(self) -> None:
        self.shared = MemoryBackend()
        self.listeners: dict[str, ChangeListener] = {}
        self.lose = 0
        """How many of the next notifications to lose."""
        self.lost: list[TaskChange] = []
        self.before_commit: dict[str, Callable[[], Awaitable[None]]] = {}
        """Run before each commit of that replica's (another writer getting in first)."""

    def publish(self, origin: str, writes: Sequence[TaskWrite]) -> None:
        for write in writes:
            change = TaskChange(task_id=write.record.task_id, version=write.record.version,
                                seq=write.record.seq)
            if self.lose:
                self.lose -= 1
                self.lost.append(change)
                continue
            for name, listener in self.listeners.items():
                if name != origin:
                    listener.changed(change)


@attrs.define
class Replica:
    """One process's view of the shared backend: a `TaskBackend` and a `ChangeFeed`."""

    hub: Hub
    origin: str

    async def commit(self, writes: Sequence[TaskWrite]) -> None:
        hook = self.hub.before_commit.get(self.origin)
        if hook is not None:
            await hook()
        await self.hub.shared.commit(writes)
        self.hub.publish(self.origin, writes)

    async def run_change_feed(self, listener: ChangeListener, *,
                              task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                              ) -> None:
        self.hub.listeners[self.origin] = listener
        listener.resync()
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            del self.hub.listeners[self.origin]

    async def task_versions(self, task_ids: Sequence[str]) -> list[TaskChange]:
        found = []
        for task_id in task_ids:
            record = await self.hub.shared.get_task(task_id)
            if record is not None:
                found.append(TaskChange(task_id=task_id, version=record.version,
                                        seq=record.seq))
        return found

    def __getattr__(self, name: str) -> object:
        return getattr(self.hub.shared, name)


@asynccontextmanager
async def replicas(**options: object) -> AsyncIterator[tuple[Hub, ServerTaskStore,
                                                             ServerTaskStore]]:
    hub = Hub()
    async with trio.open_nursery() as nursery:
        stores = []
        for name in ("a", "b"):
            replica = Replica(hub, name)
            assert isinstance(replica, ChangeFeed) and isinstance(replica, TaskBackend)
            store = ServerTaskStore(replica, poll_interval=POLL, **options)  # type: ignore[arg-type]
            await nursery.start(store.run)
            stores.append(store)
        yield hub, stores[0], stores[1]
        nursery.cancel_scope.cancel()


async def test_a_remote_commit_wakes_a_subscriber_at_once(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (_, a, b):
        await a.create_task(new_task("t"), owner="")
        await a.write("t", [status("t", TaskState.WORKING)])
        seen = [e.seq for e in await b.wait_events("t", 0)]
        assert seen == [1, 2]
        got: list[int] = []

        async def follow() -> None:
            cursor = 2
            while events := await b.wait_events("t", cursor):
                got.extend(e.seq for e in events)
                cursor = events[-1].seq

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            for i in range(5):
                await a.write("t", [chunk("t", i)])
            await a.write("t", [status("t", TaskState.COMPLETED)])
        assert got == [3, 4, 5, 6, 7, 8]  # every event once, in order
        assert trio.current_time() == start  # no poll was needed
        record = await b.get_task("t")
        assert record == await a.get_task("t")
        assert record is not None and record.state is TaskState.COMPLETED
        assert b.statistics().reloads >= 1 and b.statistics().found_by_poll == 0


async def test_a_lost_notification_is_recovered_by_the_poll(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        assert (await b.get_task("t")) is not None  # cached on b
        await trio.sleep(1.5)  # between two polls
        woke: list[float] = []

        async def follow() -> None:
            events = await b.wait_events("t", 1)
            assert [e.seq for e in events] == [2]
            woke.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await trio.testing.wait_all_tasks_blocked()
            hub.lose = 1
            start = trio.current_time()
            await a.write("t", [status("t", TaskState.WORKING)])
        assert [c.version for c in hub.lost] == [2]
        # woken by the first poll after the write, within one interval: polls run at
        # POLL, 2·POLL, ... after the store started (at 0)
        assert woke == [POLL]
        assert 0 < woke[0] - start <= POLL
        assert b.statistics().found_by_poll == 1


async def test_a_cached_task_nobody_waits_on_is_reloaded_when_read(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (_, a, b):
        await a.create_task(new_task("t"), owner="")
        assert (await b.get_task("t")).version == 1  # type: ignore[union-attr]
        await a.write("t", [status("t", TaskState.WORKING)])
        await a.write("t", (), dispatch=DispatchState(attempts=1))
        await trio.testing.wait_all_tasks_blocked()
        reloads = b.statistics().reloads
        assert reloads == 0  # only marked stale: nobody was waiting
        record = await b.get_task("t")
        assert record == await a.get_task("t")
        assert record is not None and (record.version, record.seq) == (3, 2)
        assert b.statistics().reloads == 1


async def test_a_watcher_is_woken_by_a_remote_commit(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (_, a, b):
        await a.create_task(new_task("t"), owner="")
        async with trio.open_nursery() as nursery:
            got = []

            async def watch() -> None:
                record = await b.wait_record("t", lambda r: r.state is TaskState.COMPLETED)
                got.append(record.seq)

            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            await a.write("t", [status("t", TaskState.WORKING)])
            await a.write("t", [status("t", TaskState.COMPLETED)])
        assert got == [3]


async def test_remote_changes_are_reported_coalesced_and_bounded(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (_, a, b):
        with b.remote_changes(limit=2) as changes:
            await trio.testing.wait_all_tasks_blocked()
            await a.create_task(new_task("t1"), owner="")
            await a.write("t1", [status("t1", TaskState.WORKING)])
            await a.write("t1", (), dispatch=DispatchState(attempts=1))
            batch = await changes.wait()
            # whatever was reported by the time b looked: the newest change of t1
            assert [c.task_id for c in batch.changes] == ["t1"]
            assert not batch.missed
            while batch.changes[-1].version < 3:
                batch = await changes.wait()
            assert batch.changes[-1] == TaskChange(task_id="t1", version=3, seq=2)
            with a.remote_changes() as mine:  # a hears nothing of its own
                for n in range(2, 5):
                    await a.create_task(new_task(f"t{n}"), owner="")
                await trio.testing.wait_all_tasks_blocked()
                with trio.move_on_after(1):
                    await mine.wait()
                    raise AssertionError("a store heard of its own commits")
            batch = await changes.wait()
            assert [c.task_id for c in batch.changes] == ["t2", "t3"]
            assert batch.missed  # t4 did not fit
            # a (re)connected feed may have missed changes: subscribers are told so
            b._sync.resync()  # type: ignore[union-attr]
            batch = await changes.wait()
            assert batch.missed and batch.changes == ()


async def test_a_write_on_a_stale_head_conflicts_and_the_cache_recovers(
        autojump_clock: trio.testing.MockClock) -> None:
    """b writes the task while a's commit has not reached it (the notification was
    lost): the backend refuses b's write, and b's cache is reloaded for the next one."""
    async with replicas(conflict_retries=0) as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1
        lease = Lease(worker_id="w", attempt_id="a1", expires_at=2e9)
        await a.write("t", (), dispatch=DispatchState(attempts=1, lease=lease))
        with pytest.raises(ConflictError):
            await b.write("t", (), dispatch=DispatchState(attempts=1))
        head = await b.head("t")
        assert head is not None and head.version == 2 and head.dispatch.lease == lease


class Taken(Exception):
    """A test's fencing check refused the write."""


async def test_a_conflicting_write_is_built_again_on_the_fresh_record(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    """b's write was built on version 1; a stored version 2 first (b did not hear of
    it). b's write is rebuilt on version 2: its `check` and `dispatch` see that. A
    race that is settled so is normal between replicas: nothing is logged as an error."""
    async with replicas() as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1
        await a.write("t", [status("t", TaskState.WORKING)],
                      dispatch=DispatchState(attempts=1))
        seen: list[tuple[int, int]] = []

        def check(record: TaskRecord) -> None:
            seen.append((record.version, record.dispatch.attempts))

        record = await b.write("t", [chunk("t", 0)], check=check,
                               dispatch=lambda d: attrs.evolve(d, attempts=d.attempts + 1))
        assert seen == [(1, 0), (2, 1)]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert (record.version, record.seq, record.dispatch.attempts) == (3, 3, 2)
        assert record.state is TaskState.WORKING  # a's event is there, then b's
        assert await hub.shared.get_task("t") == record
        assert [e.seq for e in await hub.shared.read_events("t", 0, 10)] == [1, 2, 3]


async def test_a_rebuilt_write_is_fenced_by_the_fresh_record(
        autojump_clock: trio.testing.MockClock) -> None:
    """Two replicas claim the task at once: a's claim lands, b's is rebuilt on it, and
    b's check then finds the lease taken; the caller gets that, not a conflict."""
    async with replicas() as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1

        def claim(worker: str) -> tuple[Callable[[TaskRecord], None], DispatchState]:
            def queued(record: TaskRecord) -> None:
                if record.dispatch.lease is not None:
                    raise Taken(record.dispatch.lease.worker_id)
            lease = Lease(worker_id=worker, attempt_id=f"{worker}-1", expires_at=2e9)
            return queued, DispatchState(attempts=1, lease=lease)

        check, dispatch = claim("a")
        await a.write("t", (), check=check, dispatch=dispatch)
        check, dispatch = claim("b")
        with pytest.raises(Taken, match="a"):
            await b.write("t", (), check=check, dispatch=dispatch)
        stored = await hub.shared.get_task("t")
        assert stored is not None and stored.version == 2
        assert stored.dispatch.lease is not None and stored.dispatch.lease.worker_id == "a"


async def test_a_write_that_keeps_conflicting_gives_up(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas(conflict_retries=2) as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1_000
        tries = 0

        def check(record: TaskRecord) -> None:
            nonlocal tries
            tries += 1

        async def a_first() -> None:  # a gets in before every commit of b's
            await a.write("t", (), dispatch=DispatchState(attempts=tries))

        hub.before_commit["b"] = a_first
        with pytest.raises(ConflictError):
            await b.write("t", (), check=check, dispatch=DispatchState(attempts=99))
        assert tries == 3  # the first try and two rebuilds


async def test_a_lost_wait_false_write_shows_in_the_next_write(
        autojump_clock: trio.testing.MockClock) -> None:
    """A `wait=False` write cannot be rebuilt: it conflicts and is dropped; the next
    write is built on the reloaded record, so it sees what really happened."""
    async with replicas() as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1
        await a.write("t", (), dispatch=DispatchState(attempts=5))
        await b.write("t", (), dispatch=DispatchState(attempts=1), wait=False)
        await trio.testing.wait_all_tasks_blocked()
        assert b.statistics().failed_writes == 1
        seen = []
        await b.write("t", (), check=lambda r: seen.append(r.dispatch.attempts))
        assert seen == [5]
        assert (await hub.shared.get_task("t")).version == 3  # type: ignore[union-attr]


async def test_creating_a_task_another_replica_created_stays_an_error(
        autojump_clock: trio.testing.MockClock) -> None:
    async with replicas() as (_, a, b):
        await a.create_task(new_task("t"), owner="")
        with pytest.raises(ConflictError):
            await b.create_task(new_task("t"), owner="")
        assert (await b.get_task("t")) == await a.get_task("t")
