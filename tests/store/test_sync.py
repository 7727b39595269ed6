"""Replicas keeping their caches in step (actors/task_sync.py), on virtual time.

Two `ServerTaskStore`s share one memory backend, each through a `Replica` view
with an origin of its own; a `Hub` plays the change feed between them (what
PostgreSQL's LISTEN/NOTIFY does for real in test_replicas.py) and can lose
notifications on purpose. Fakes at the port only: the stores are the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
    async with replicas() as (hub, a, b):
        await a.create_task(new_task("t"), owner="")
        await b.get_task("t")
        hub.lose = 1
        lease = Lease(worker_id="w", attempt_id="a1", expires_at=2e9)
        await a.write("t", (), dispatch=DispatchState(attempts=1, lease=lease))
        with pytest.raises(ConflictError):
            await b.write("t", (), dispatch=DispatchState(attempts=1))
        head = await b.head("t")
        assert head is not None and head.version == 2 and head.dispatch.lease == lease
