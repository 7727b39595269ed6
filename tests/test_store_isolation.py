"""A write the backend cannot store fails alone: the group commit isolates it.

The committer hands everything queued to the backend as one batch. When the backend
refuses the batch because of one write (data it cannot serialise, a conflict), every
other writer of that batch must still succeed and only the bad write's writer gets
the error; the store's invariants hold as for any failed commit (the bad task's head
rolls back, writes queued on top of the lost state are refused). An error that says
the backend cannot store anything (closed, I/O) fails the batch at once, without
searching it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from actors.store_port import BackendUnavailableError, TaskWrite
from actors.task_store import ServerTaskStore, StoreClosedError
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
from runtime.server import ServerConfig, open_server
from runtime.store import open_memory_backend
from tests.agents import scripted_agent
from tests.conftest import Rpc, user_message

POISON = "poison"


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


def artifact(task_id: str, artifact_id: str, data: Any = None) -> StreamResponse:
    part = Part(data=data) if data is not None else Part(text=artifact_id)
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="ctx",
        artifact=Artifact(artifact_id=artifact_id, parts=[part])))


def poisoned(write: TaskWrite) -> bool:
    return any(e.event.artifact_update is not None
               and e.event.artifact_update.artifact.artifact_id == POISON for e in write.events)


@attrs.define
class PickyBackend:
    """A backend at the port that cannot serialise one write (an artifact named
    `poison`): a batch holding it fails as a whole, as SQLite's transaction does.
    `hold` parks the next commit until set, so writers can queue up behind it."""

    inner: Any
    calls: list[int] = attrs.Factory(list)
    hold: trio.Event | None = None
    error: type[Exception] = ValueError

    async def commit(self, writes: Sequence[TaskWrite]) -> None:
        self.calls.append(len(writes))
        if self.hold is not None:
            hold, self.hold = self.hold, None
            await hold.wait()
        if any(poisoned(w) for w in writes):
            raise self.error("cannot serialise the poisoned artifact")
        await self.inner.commit(writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_write_that_cannot_be_stored_fails_alone() -> None:
    """Sixteen writers and a bad one in one batch: the sixteen commit, the bad one
    gets the backend's error, its task rolls back, and a write queued on top of
    the bad one is refused while the write before it commits."""
    async with open_memory_backend() as inner, trio.open_nursery() as nursery:
        backend = PickyBackend(inner)
        store = ServerTaskStore(backend)  # type: ignore[arg-type]
        await nursery.start(store.run)
        honest = [f"t{i}" for i in range(16)]
        for task_id in [*honest, "bad", "blocker"]:
            await store.create_task(new_task(task_id), owner="")
        outcomes: dict[str, BaseException | None] = {}

        async def write(name: str, task_id: str, event: StreamResponse) -> None:
            try:
                await store.write(task_id, [event])
            except Exception as exc:
                outcomes[name] = exc
            else:
                outcomes[name] = None

        with trio.fail_after(10):
            async with trio.open_nursery() as writers:
                # The committer is busy with the blocker's commit while the batch queues.
                backend.hold = gate = trio.Event()
                writers.start_soon(write, "blocker", "blocker",
                                   status("blocker", TaskState.WORKING))
                await trio.testing.wait_all_tasks_blocked()
                calls_before = len(backend.calls)
                queue = [*((t, t, status(t, TaskState.WORKING)) for t in honest[:8]),
                         ("bad-before", "bad", status("bad", TaskState.WORKING)),
                         ("bad", "bad", artifact("bad", POISON)),
                         ("bad-after", "bad", artifact("bad", "after")),
                         *((t, t, status(t, TaskState.WORKING)) for t in honest[8:])]
                for name, task_id, event in queue:  # queued in this order
                    writers.start_soon(write, name, task_id, event)
                    await trio.testing.wait_all_tasks_blocked()
                assert store.statistics().queued_writes == 19  # one batch behind the blocker
                gate.set()

        for task_id in honest:
            assert outcomes[task_id] is None, (task_id, outcomes[task_id])
            record = await store.get_task(task_id)
            assert record is not None and record.state is TaskState.WORKING and record.seq == 2
        assert outcomes["blocker"] is None
        assert outcomes["bad-before"] is None  # queued before the bad write: stored
        assert isinstance(outcomes["bad"], ValueError)
        assert "poisoned" in str(outcomes["bad"])
        assert isinstance(outcomes["bad-after"], StoreClosedError)  # built on the lost state
        record = await store.get_task("bad")
        assert record is not None and record.state is TaskState.WORKING and record.seq == 2
        assert record.task.artifacts is None
        assert await store.head("bad") == record  # the head rolled back to what is stored
        assert [e.seq for e in await inner.read_events("bad", 0, 10)] == [1, 2]
        # Bisecting 19 writes for one bad one: a handful of backend calls, not one per write.
        searched = len(backend.calls) - calls_before - 1
        assert searched <= 2 * math.ceil(math.log2(19)) + 1, backend.calls
        # The bad task takes writes again, and the next batches are whole again.
        await store.write("bad", [artifact("bad", "fine")])
        record = await store.get_task("bad")
        assert record is not None and record.seq == 3
        stats = store.statistics()
        assert stats.failed_writes == 1
        nursery.cancel_scope.cancel()


async def test_two_bad_writes_in_one_batch_fail_alone() -> None:
    async with open_memory_backend() as inner, trio.open_nursery() as nursery:
        backend = PickyBackend(inner)
        store = ServerTaskStore(backend)  # type: ignore[arg-type]
        await nursery.start(store.run)
        ids = [f"t{i}" for i in range(10)]
        for task_id in [*ids, "blocker"]:
            await store.create_task(new_task(task_id), owner="")
        failed: list[str] = []
        done: list[str] = []

        async def write(task_id: str) -> None:
            event = artifact(task_id, POISON if task_id in ("t2", "t7") else "ok")
            try:
                await store.write(task_id, [event])
            except ValueError:
                failed.append(task_id)
            else:
                done.append(task_id)

        with trio.fail_after(10):
            async with trio.open_nursery() as writers:
                backend.hold = gate = trio.Event()
                writers.start_soon(store.write, "blocker",
                                   [status("blocker", TaskState.WORKING)])
                await trio.testing.wait_all_tasks_blocked()
                for task_id in ids:
                    writers.start_soon(write, task_id)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
        assert sorted(failed) == ["t2", "t7"]
        assert sorted(done) == sorted(set(ids) - {"t2", "t7"})
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("error", [BackendUnavailableError, OSError])
async def test_an_unavailable_backend_fails_the_batch_without_a_search(
    error: type[Exception],
) -> None:
    """No write is at fault when the backend cannot store anything: one call fails
    the batch, instead of a search that asks the failing backend again and again."""
    async with open_memory_backend() as inner, trio.open_nursery() as nursery:
        backend = PickyBackend(inner, error=error)
        store = ServerTaskStore(backend)  # type: ignore[arg-type]
        await nursery.start(store.run)
        ids = [f"t{i}" for i in range(8)]
        for task_id in [*ids, "blocker"]:
            await store.create_task(new_task(task_id), owner="")
        errors: list[BaseException] = []

        async def write(task_id: str) -> None:
            try:
                await store.write(task_id, [artifact(task_id, POISON)])
            except Exception as exc:
                errors.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as writers:
                backend.hold = gate = trio.Event()
                writers.start_soon(store.write, "blocker",
                                   [status("blocker", TaskState.WORKING)])
                await trio.testing.wait_all_tasks_blocked()
                calls_before = len(backend.calls)
                for task_id in ids:
                    writers.start_soon(write, task_id)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
        assert all(isinstance(e, error) for e in errors)
        assert len(backend.calls) - calls_before == 1  # the batch, asked once
        nursery.cancel_scope.cancel()


def deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_deep_data_from_one_writer_does_not_fail_honest_senders(tmp_path: Path) -> None:
    """End to end on SQLite, where deep data fails to serialise: eight honest clients
    send messages over HTTP while a writer keeps storing a deeply nested artifact
    straight through the task store (past the request limits). Every honest call
    succeeds; every deep write fails, alone."""
    config = ServerConfig(port=0, store="sqlite", data_dir=tmp_path, agent=scripted_agent())
    senders, per_sender = 8, 25
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url,
                                                             timeout=30) as client:
        store = srv.store
        await store.create_task(new_task("deep"), owner="")
        await store.write("deep", [status("deep", TaskState.WORKING)])
        bad = artifact("deep", "deep", deep(400))
        outcomes: list[str] = []
        deep_failures = 0
        deep_stored = 0
        running = True

        async def sender() -> None:
            rpc = Rpc(client, "1.0")
            for i in range(per_sender):
                out = await rpc.raw("SendMessage", {"message": user_message(f"echo {i}")})
                outcomes.append("ok" if "result" in out else repr(out.get("error")))

        async def deep_writer() -> None:
            nonlocal deep_failures, deep_stored
            while running:
                try:
                    await store.write("deep", [bad])
                except ValueError:
                    deep_failures += 1
                else:
                    deep_stored += 1
                await trio.lowlevel.checkpoint()

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(deep_writer)
                async with trio.open_nursery() as honest:
                    for _ in range(senders):
                        honest.start_soon(sender)
                running = False
        assert deep_stored == 0 and deep_failures > 0
        failures = [o for o in outcomes if o != "ok"]
        assert failures == [], f"{len(failures)} of {len(outcomes)} honest calls failed: " \
                               f"{failures[:3]}"
        assert len(outcomes) == senders * per_sender
        record = await store.get_task("deep")
        assert record is not None and record.seq == 2  # nothing of the deep writes landed
        stats = store.statistics()
        assert stats.failed_writes == deep_failures
        # Some deep writes shared a batch with honest ones (that batch was searched).
        assert stats.failed_commits > stats.failed_writes, stats
