"""ServerTaskStore: group commit, lifecycle checks, rollback, and subscribers that lag."""

from __future__ import annotations

import json

import attrs
import httpx
import trio
import trio.testing

from actors.store_port import TaskWrite
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
from protocol.sse import SSEDecoder
from protocol.states import IllegalTransition
from runtime.server import RunningServer
from runtime.store import open_memory_backend
from tests.agents import Controls
from tests.conftest import Rpc, user_message, wait_state


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


def chunk(task_id: str, i: int) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="ctx", append=i > 0,
        artifact=Artifact(artifact_id="a", parts=[Part(text=str(i))])))


async def test_slow_subscriber_neither_stalls_store_nor_loses_events() -> None:
    n = 3000
    async with open_memory_backend() as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend, tail_size=16, write_queue=64)
        await nursery.start(store.run)
        await store.create_task(new_task("t"), owner="")
        await store.write("t", [status("t", TaskState.WORKING)])
        # A subscriber that has read the first event, then stalls.
        first = await store.wait_events("t", 0)
        assert [e.seq for e in first][:1] == [1]
        with trio.fail_after(10):  # the writer never waits on the stalled subscriber
            for i in range(n):
                await store.write("t", [chunk("t", i)], wait=False)
            await store.write("t", [status("t", TaskState.COMPLETED)])
        seen = [e.seq for e in first]
        cursor = seen[-1]
        while True:
            events = await store.wait_events("t", cursor, limit=500)
            if not events:
                break
            seen += [e.seq for e in events]
            cursor = events[-1].seq
        assert seen == list(range(1, n + 4))
        record = await store.get_task("t")
        assert record is not None and record.seq == n + 3
        assert [p.text for p in record.task.artifacts[0].parts] == [str(i) for i in range(n)]
        stats = store.statistics()
        assert stats.commits < stats.committed_writes  # writes were grouped
        nursery.cancel_scope.cancel()


async def test_illegal_transition_writes_nothing() -> None:
    async with open_memory_backend() as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend)
        await nursery.start(store.run)
        await store.create_task(new_task("t"), owner="")
        await store.write("t", [status("t", TaskState.COMPLETED)])
        try:
            await store.write("t", [status("t", TaskState.WORKING)])
        except IllegalTransition as exc:
            assert "TASK_STATE_COMPLETED -> TASK_STATE_WORKING" in str(exc)
        else:
            raise AssertionError("a completed task went back to working")
        record = await store.get_task("t")
        assert record is not None and record.seq == 2 and record.state is TaskState.COMPLETED
        assert [e.seq for e in await backend.read_events("t", 0, 10)] == [1, 2]
        nursery.cancel_scope.cancel()


@attrs.define
class FlakyBackend:
    """Wraps a backend; fails the next commit when told to."""

    inner: object
    fail_next: bool = False

    async def commit(self, writes: list[TaskWrite]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        await self.inner.commit(writes)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_failed_commit_rolls_back_and_store_recovers() -> None:
    async with open_memory_backend() as inner, trio.open_nursery() as nursery:
        backend = FlakyBackend(inner)
        store = ServerTaskStore(backend)  # type: ignore[arg-type]
        await nursery.start(store.run)
        await store.create_task(new_task("t"), owner="")
        backend.fail_next = True
        try:
            await store.write("t", [status("t", TaskState.WORKING)])
        except OSError as exc:
            assert "disk full" in str(exc)
        else:
            raise AssertionError("the failed commit was acknowledged")
        record = await store.get_task("t")
        assert record is not None and record.state is TaskState.SUBMITTED and record.seq == 1
        await store.write("t", [status("t", TaskState.WORKING)])  # the same write succeeds now
        record = await store.get_task("t")
        assert record is not None and record.state is TaskState.WORKING and record.seq == 2
        assert store.statistics().failed_commits == 1
        nursery.cancel_scope.cancel()


async def test_slow_sse_client_does_not_hold_up_the_task(
    server: RunningServer, rpc: Rpc, controls: Controls
) -> None:
    """An SSE client that stops reading: the task completes anyway, and the client
    later receives every event, in order, exactly once."""
    n = 2000
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
            "params": {"message": user_message(f"chunks {n}")}}
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=server.url) as slow, slow.stream(
            "POST", "/", json=body, headers={"A2A-Version": "1.0"}
        ) as r:
            it = r.aiter_bytes()
            dec = SSEDecoder()
            events = dec.feed(await it.__anext__())
            task_id = json.loads(events[0].data)["result"]["task"]["id"]
            # stop reading; the task runs to completion meanwhile
            await wait_state(server, task_id, "TASK_STATE_COMPLETED")
            task = await rpc.call("GetTask", {"id": task_id, "historyLength": 0})
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"
            async for data in it:
                events += dec.feed(data)
    seqs = [int(e.id or 0) for e in events]
    assert seqs == list(range(1, n + 4))
    texts = [json.loads(e.data)["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"]
             for e in events[2:-1]]
    assert texts == [f"c{i}" for i in range(n)]


async def test_wait_record_returns_the_commit_its_predicate_held_for() -> None:
    """A waiter is woken only by a commit that satisfies it, and gets that record
    even when a later commit moved on before it ran."""
    async with open_memory_backend() as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend)
        await nursery.start(store.run)
        await store.create_task(new_task("t"), owner="")
        got: list[tuple[TaskState, int]] = []

        async def waiter(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            record = await store.wait_record("t", lambda r: r.state is TaskState.INPUT_REQUIRED)
            got.append((record.state, record.seq))

        with trio.fail_after(5):
            await nursery.start(waiter)
            await store.write("t", [status("t", TaskState.WORKING)])
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # a commit that does not satisfy it wakes nothing
            # two commits before the waiter runs: it still sees the one it waited for
            await store.write("t", [status("t", TaskState.INPUT_REQUIRED)], wait=False)
            await store.write("t", [status("t", TaskState.WORKING)], wait=False)
            await trio.testing.wait_all_tasks_blocked()
        assert got == [(TaskState.INPUT_REQUIRED, 3)]
        assert (await store.get_task("t")).state is TaskState.WORKING  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


def test_merge_writes_folds_consecutive_writes_of_a_task() -> None:
    from actors.store_port import StoredEvent, TaskRecord
    from actors.task_store import merge_writes

    def rec(task_id: str, seq: int) -> TaskRecord:
        # one event per write here, so the version follows the sequence number
        return TaskRecord(task=new_task(task_id), owner="", seq=seq, created_at=0, status_at=0,
                          version=seq)

    def w(task_id: str, expected: int | None, seq: int) -> TaskWrite:
        start = 0 if expected is None else expected
        events = tuple(StoredEvent(task_id=task_id, seq=s, event=chunk(task_id, s))
                       for s in range(start + 1, seq + 1))
        return TaskWrite(record=rec(task_id, seq), events=events, expected_seq=expected,
                         expected_version=expected)

    writes = [w("a", None, 1), w("b", 4, 5), w("a", 1, 2), w("a", 2, 4), w("b", 5, 6)]
    merged = merge_writes(writes)
    assert [(m.record.task_id, m.expected_seq, m.record.seq) for m in merged] == [
        ("a", None, 4), ("b", 4, 6)]
    assert [e.seq for e in merged[0].events] == [1, 2, 3, 4]
    assert [e.seq for e in merged[1].events] == [5, 6]
    # a write that does not continue the previous one stays separate
    broken = merge_writes([w("a", 1, 2), w("a", 7, 8)])
    assert [(m.expected_seq, m.record.seq) for m in broken] == [(1, 2), (7, 8)]
