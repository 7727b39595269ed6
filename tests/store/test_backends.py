"""One contract suite for every TaskBackend (memory, SQLite, PostgreSQL), plus SQLite-only
durability checks (PostgreSQL-only ones are in test_postgres.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

import runtime.store
from actors.store_port import (
    ConflictError,
    DispatchState,
    Lease,
    PushConfigRecord,
    Route,
    StoredEvent,
    TaskBackend,
    TaskQuery,
    TaskRecord,
    TaskWrite,
)
from protocol.models import (
    StreamResponse,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.store import open_memory_backend, open_sqlite_backend
from runtime.store.postgres import open_postgres_backend
from runtime.store.sqlite import SCHEMA_VERSION

T0 = 1_700_000_000.0
TIMEOUT = 10


# --- record builders ------------------------------------------------------------------


def make_task(
    task_id: str, context_id: str = "ctx", state: TaskState = TaskState.SUBMITTED
) -> Task:
    return Task(id=task_id, context_id=context_id, status=TaskStatus(state=state))


def make_event(task_id: str, seq: int, state: TaskState, context_id: str = "ctx") -> StoredEvent:
    update = TaskStatusUpdateEvent(
        task_id=task_id,
        context_id=context_id,
        status=TaskStatus(state=state),
        metadata={"n": seq, "nothing": None},
    )
    return StoredEvent(task_id=task_id, seq=seq, event=StreamResponse(status_update=update))


def make_push(
    task_id: str, config_id: str, *, owner: str = "", delivered: int = 0
) -> PushConfigRecord:
    config = TaskPushNotificationConfig(
        id=config_id, task_id=task_id, url=f"https://example.test/{config_id}", token="t"
    )
    return PushConfigRecord(config=config, owner=owner, delivered_seq=delivered)


def create(
    task_id: str,
    *,
    owner: str = "",
    context_id: str = "ctx",
    state: TaskState = TaskState.SUBMITTED,
    at: float = T0,
    events: int = 1,
    push: tuple[PushConfigRecord, ...] = (),
) -> TaskWrite:
    record = TaskRecord(
        task=make_task(task_id, context_id, state),
        owner=owner,
        seq=events,
        created_at=at,
        status_at=at,
    )
    log = tuple(make_event(task_id, s, state, context_id) for s in range(1, events + 1))
    return TaskWrite(record=record, events=log, expected_seq=None, expected_version=None,
                     push_configs=push)


def advance(
    record: TaskRecord,
    state: TaskState,
    *,
    at: float | None = None,
    events: int = 1,
    expected_seq: int | None = None,
    expected_version: int | None = None,
) -> TaskWrite:
    """The write that moves `record` to `state` with `events` new log entries.

    `expected_seq` and `expected_version` override where the writer believes the task
    stands (to make stale writes).
    """
    base = record.seq if expected_seq is None else expected_seq
    version = record.version if expected_version is None else expected_version
    task = record.task.model_copy(update={"status": TaskStatus(state=state)})
    new = TaskRecord(
        task=task,
        owner=record.owner,
        seq=base + events,
        created_at=record.created_at,
        status_at=record.status_at + 1 if at is None else at,
        version=version + 1,
    )
    log = tuple(
        make_event(task.id, s, state, task.context_id) for s in range(base + 1, base + events + 1)
    )
    return TaskWrite(record=new, events=log, expected_seq=base, expected_version=version)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskBackend]:
    if request.param == "memory":
        async with open_memory_backend() as memory:
            yield memory
    elif request.param == "sqlite":
        async with open_sqlite_backend(tmp_path / "data" / "tasks.sqlite3") as db:
            yield db
    else:
        # conftest.py: the run's own database, emptied; fails if PostgreSQL is unreachable.
        async with open_postgres_backend(request.getfixturevalue("postgres_url")) as pg:
            yield pg


async def all_events(backend: TaskBackend, task_id: str) -> list[StoredEvent]:
    return await backend.read_events(task_id, 0, 1_000_000)


# --- the contract ---------------------------------------------------------------------


def test_store_package_exports() -> None:
    names = {"open_memory_backend", "open_sqlite_backend", "MemoryBackend", "SQLiteBackend",
             "StoreOpenError"}
    assert set(runtime.store.__all__) == names
    for name in names:
        assert getattr(runtime.store, name) is not None


async def test_create_and_get(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        assert isinstance(backend, TaskBackend)
        write = create("t1", owner="alice", context_id="c1", events=2)
        await backend.commit([write])
        got = await backend.get_task("t1")
        assert got == write.record
        assert got is not None and got.task_id == "t1" and got.state is TaskState.SUBMITTED
        assert await backend.get_task("missing") is None
        assert await all_events(backend, "t1") == list(write.events)


async def test_empty_commit_is_a_no_op(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([])
        assert (await backend.list_tasks(TaskQuery())).total_size == 0


async def test_conflicting_create_stores_nothing_from_the_batch(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        await backend.commit([first])
        with pytest.raises(ConflictError):
            await backend.commit([create("t2"), create("t1", state=TaskState.WORKING, events=3)])
        assert await backend.get_task("t2") is None
        assert await all_events(backend, "t2") == []
        assert await backend.get_task("t1") == first.record
        assert await all_events(backend, "t1") == list(first.events)


async def test_update_with_expected_seq(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        await backend.commit([first])
        second = advance(first.record, TaskState.WORKING, events=2)
        await backend.commit([second])
        got = await backend.get_task("t1")
        assert got == second.record
        assert got is not None and got.seq == 3 and got.state is TaskState.WORKING
        assert [e.seq for e in await all_events(backend, "t1")] == [1, 2, 3]


async def test_wrong_expected_seq_rolls_back_the_whole_batch(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        a, b = create("a"), create("b")
        await backend.commit([a, b])
        good = advance(a.record, TaskState.WORKING)
        stale = advance(b.record, TaskState.WORKING, expected_seq=5)
        new = create("c", push=(make_push("c", "p1"),))
        with pytest.raises(ConflictError):
            await backend.commit([good, new, stale])
        assert await backend.get_task("a") == a.record
        assert await backend.get_task("b") == b.record
        assert await backend.get_task("c") is None
        assert [e.seq for e in await all_events(backend, "a")] == [1]
        assert await all_events(backend, "c") == []
        assert await backend.list_push_configs("c") == []
        # The same batch without the stale write goes through.
        await backend.commit([good, new])
        assert await backend.get_task("a") == good.record
        assert await backend.get_task("c") == new.record


async def test_update_of_missing_task_conflicts(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        ghost = create("ghost").record
        with pytest.raises(ConflictError):
            await backend.commit([advance(ghost, TaskState.WORKING)])
        assert await backend.get_task("ghost") is None


async def test_several_writes_to_one_task_in_a_batch(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        second = advance(first.record, TaskState.WORKING)
        third = advance(second.record, TaskState.COMPLETED, events=2)
        await backend.commit([first, second, third])
        assert await backend.get_task("t1") == third.record
        log = await all_events(backend, "t1")
        assert [e.seq for e in log] == [1, 2, 3, 4]
        assert [e.event.status_update.status.state for e in log if e.event.status_update] == [
            TaskState.SUBMITTED,
            TaskState.WORKING,
            TaskState.COMPLETED,
            TaskState.COMPLETED,
        ]
        # Replaying a write already applied in the batch is a conflict.
        with pytest.raises(ConflictError):
            await backend.commit([advance(third.record, TaskState.CANCELED), second])
        assert await backend.get_task("t1") == third.record


async def test_malformed_write_is_refused(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        good = create("t1", events=2)
        gap = TaskWrite(record=good.record, events=(good.events[1],), expected_seq=None)
        with pytest.raises(ValueError, match="out of place"):
            await backend.commit([gap])
        short = TaskWrite(record=good.record, events=good.events[:1], expected_seq=None)
        with pytest.raises(ValueError, match="record.seq"):
            await backend.commit([short])
        assert await backend.get_task("t1") is None


def lease_write(record: TaskRecord, worker: str) -> TaskWrite:
    """A claim: a write with a lease and no event (the sequence number stays)."""
    lease = Lease(worker_id=worker, attempt_id=f"{worker}-1", expires_at=T0 + 90)
    leased = attrs.evolve(record, dispatch=DispatchState(attempts=1, lease=lease),
                          version=record.version + 1)
    return TaskWrite(record=leased, events=(), expected_seq=record.seq,
                     expected_version=record.version)


async def test_a_write_without_events_is_compare_and_set(backend: TaskBackend) -> None:
    """Two claims built on the same record: the sequence number cannot tell them apart,
    the version does, so the second is refused instead of overwriting the first."""
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        await backend.commit([first])
        mine, theirs = lease_write(first.record, "a"), lease_write(first.record, "b")
        await backend.commit([mine])
        with pytest.raises(ConflictError):
            await backend.commit([theirs])
        got = await backend.get_task("t1")
        assert got == mine.record
        assert got is not None and got.version == 2 and got.seq == 1
        assert got.dispatch.lease is not None and got.dispatch.lease.worker_id == "a"
        # built on what is stored now, it goes through
        await backend.commit([advance(got, TaskState.WORKING)])
        got = await backend.get_task("t1")
        assert got is not None and (got.version, got.seq) == (3, 2)


async def test_every_write_moves_the_version_on(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1", events=3)
        second = advance(first.record, TaskState.WORKING, events=2)
        third = lease_write(second.record, "w")
        await backend.commit([first])
        assert (await backend.get_task("t1")).version == 1  # type: ignore[union-attr]
        await backend.commit([second, third])
        got = await backend.get_task("t1")
        assert got == third.record
        assert got is not None and (got.version, got.seq) == (3, 5)
        # a stale version is refused even with the right sequence number
        with pytest.raises(ConflictError):
            await backend.commit([advance(got, TaskState.COMPLETED, expected_version=2)])
        assert await backend.get_task("t1") == third.record


async def test_malformed_versions_are_refused(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        await backend.commit([first])
        update = advance(first.record, TaskState.WORKING)
        unversioned = attrs.evolve(update, expected_version=None)
        with pytest.raises(ValueError, match="expected_version"):
            await backend.commit([unversioned])
        standing = attrs.evolve(update, record=attrs.evolve(update.record, version=1))
        with pytest.raises(ValueError, match="version"):
            await backend.commit([standing])
        assert await backend.get_task("t1") == first.record


async def test_read_events_after_seq_and_limit(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        write = create("t1", events=5)
        await backend.commit([write])
        head = await backend.read_events("t1", 0, 2)
        assert [e.seq for e in head] == [1, 2]
        assert head == list(write.events[:2])
        assert head[0].event.status_update is not None
        assert head[0].event.status_update.metadata == {"n": 1, "nothing": None}
        assert [e.seq for e in await backend.read_events("t1", 2, 10)] == [3, 4, 5]
        assert [e.seq for e in await backend.read_events("t1", 3, 1)] == [4]
        assert await backend.read_events("t1", 5, 10) == []
        assert await backend.read_events("t1", 0, 0) == []
        assert await backend.read_events("nope", 0, 10) == []
        # The returned list is the caller's own.
        head.clear()
        assert len(await backend.read_events("t1", 0, 2)) == 2


async def seed_for_listing(backend: TaskBackend) -> list[TaskRecord]:
    writes = [
        create("a", owner="alice", context_id="c1", state=TaskState.SUBMITTED, at=T0 + 1),
        create("b", owner="alice", context_id="c2", state=TaskState.WORKING, at=T0 + 2),
        create("c", owner="bob", context_id="c1", state=TaskState.COMPLETED, at=T0 + 3),
        create("d", owner="bob", context_id="c2", state=TaskState.WORKING, at=T0 + 3),
        create("e", owner="alice", context_id="c1", state=TaskState.COMPLETED, at=T0 + 5),
    ]
    await backend.commit(writes)
    return [w.record for w in writes]


def ids(records: list[TaskRecord]) -> list[str]:
    return [r.task_id for r in records]


async def test_list_tasks_order_newest_first_ties_on_id(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await seed_for_listing(backend)
        page = await backend.list_tasks(TaskQuery())
        assert ids(page.records) == ["e", "d", "c", "b", "a"]
        assert page.total_size == 5 and page.next_cursor is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TaskQuery(owner="alice"), ["e", "b", "a"]),
        (TaskQuery(owner="nobody"), []),
        (TaskQuery(context_id="c1"), ["e", "c", "a"]),
        (TaskQuery(state=TaskState.WORKING), ["d", "b"]),
        (TaskQuery(state=TaskState.CANCELED), []),
        (TaskQuery(status_after=T0 + 3), ["e", "d", "c"]),
        (TaskQuery(status_after=T0 + 6), []),
        (TaskQuery(owner="alice", context_id="c1"), ["e", "a"]),
        (TaskQuery(owner="bob", state=TaskState.WORKING, status_after=T0 + 2.5), ["d"]),
        (TaskQuery(context_id="c2", state=TaskState.WORKING), ["d", "b"]),
    ],
)
async def test_list_tasks_filters(
    backend: TaskBackend, query: TaskQuery, expected: list[str]
) -> None:
    with trio.fail_after(TIMEOUT):
        await seed_for_listing(backend)
        page = await backend.list_tasks(query)
        assert ids(page.records) == expected
        assert page.total_size == len(expected)
        assert page.next_cursor is None


async def test_list_tasks_follows_updates(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        records = await seed_for_listing(backend)
        a = records[0]
        await backend.commit([advance(a, TaskState.COMPLETED, at=T0 + 10)])
        assert ids((await backend.list_tasks(TaskQuery())).records)[0] == "a"
        submitted = await backend.list_tasks(TaskQuery(state=TaskState.SUBMITTED))
        assert submitted.records == [] and submitted.total_size == 0
        done = await backend.list_tasks(TaskQuery(state=TaskState.COMPLETED))
        assert ids(done.records) == ["a", "e", "c"]


async def walk(backend: TaskBackend, query: TaskQuery) -> tuple[list[str], set[int]]:
    seen: list[str] = []
    totals: set[int] = set()
    cursor = None
    for _ in range(1000):
        page = await backend.list_tasks(
            TaskQuery(
                owner=query.owner,
                context_id=query.context_id,
                state=query.state,
                status_after=query.status_after,
                page_size=query.page_size,
                cursor=cursor,
            )
        )
        assert len(page.records) <= query.page_size
        seen.extend(ids(page.records))
        totals.add(page.total_size)
        if page.next_cursor is None:
            return seen, totals
        assert len(page.records) == query.page_size
        assert page.next_cursor == (page.records[-1].status_at, page.records[-1].task_id)
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("page_size", [1, 3])
async def test_pagination_walks_every_task_once(backend: TaskBackend, page_size: int) -> None:
    with trio.fail_after(TIMEOUT):
        writes = []
        for i in range(20):
            # Groups of four share a status_at, so ties on task id cross page edges.
            owner = "alice" if i % 2 else "bob"
            writes.append(create(f"t{i:02d}", owner=owner, at=T0 + i // 4))
        await backend.commit(writes)
        expected = [
            w.record.task_id
            for w in sorted(writes, key=lambda w: (w.record.status_at, w.record.task_id))
        ][::-1]
        seen, totals = await walk(backend, TaskQuery(page_size=page_size))
        assert seen == expected
        assert totals == {20}
        seen, totals = await walk(backend, TaskQuery(owner="alice", page_size=page_size))
        assert seen == [t for t in expected if int(t[1:]) % 2]
        assert totals == {10}
        seen, totals = await walk(
            backend, TaskQuery(owner="bob", status_after=T0 + 2, page_size=page_size)
        )
        assert seen == [t for t in expected if int(t[1:]) % 2 == 0 and int(t[1:]) >= 8]
        assert totals == {6}


async def test_list_tasks_rejects_empty_pages(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(ValueError):
            await backend.list_tasks(TaskQuery(page_size=0))


async def test_push_config_crud(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1")])
        for config_id in ("zeta", "alpha", "mid"):
            await backend.put_push_config(make_push("t1", config_id, owner="alice"))
        await backend.put_push_config(make_push("t2", "other"))
        listed = await backend.list_push_configs("t1")
        assert [r.config_id for r in listed] == ["zeta", "alpha", "mid"]
        assert listed[0] == make_push("t1", "zeta", owner="alice")
        got = await backend.get_push_config("t1", "alpha")
        assert got == make_push("t1", "alpha", owner="alice")
        assert await backend.get_push_config("t1", "nope") is None
        assert await backend.get_push_config("t2", "alpha") is None
        # Replacing keeps the creation order.
        replaced = PushConfigRecord(
            config=TaskPushNotificationConfig(id="alpha", task_id="t1", url="https://new.test"),
            owner="alice",
        )
        await backend.put_push_config(replaced)
        listed = await backend.list_push_configs("t1")
        assert [r.config_id for r in listed] == ["zeta", "alpha", "mid"]
        assert listed[1] == replaced
        assert await backend.delete_push_config("t1", "alpha") is True
        assert await backend.delete_push_config("t1", "alpha") is False
        assert await backend.get_push_config("t1", "alpha") is None
        await backend.put_push_config(make_push("t1", "alpha"))
        listed = await backend.list_push_configs("t1")
        assert [r.config_id for r in listed] == ["zeta", "mid", "alpha"]
        assert [r.config_id for r in await backend.list_push_configs("t2")] == ["other"]
        assert await backend.list_push_configs("none") == []


async def test_push_configs_in_a_commit(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1", push=(make_push("t1", "p1"), make_push("t1", "p2")))
        await backend.commit([first])
        assert [r.config_id for r in await backend.list_push_configs("t1")] == ["p1", "p2"]


async def test_push_delivery_never_goes_backwards(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("t1", events=9)])
        await backend.put_push_config(make_push("t1", "p"))
        await backend.set_push_delivered("t1", "p", 3)
        assert (await backend.get_push_config("t1", "p")).delivered_seq == 3  # type: ignore[union-attr]
        await backend.set_push_delivered("t1", "p", 1)
        assert (await backend.get_push_config("t1", "p")).delivered_seq == 3  # type: ignore[union-attr]
        await backend.set_push_delivered("t1", "p", 7)
        got = await backend.get_push_config("t1", "p")
        assert got == make_push("t1", "p", delivered=7)
        await backend.set_push_delivered("t1", "unknown", 5)  # ignored
        assert await backend.get_push_config("t1", "unknown") is None


async def test_list_pending_push(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await backend.commit([create("a", events=3), create("b", events=2)])
        await backend.put_push_config(make_push("a", "behind", delivered=1))
        await backend.put_push_config(make_push("a", "done", delivered=3))
        await backend.put_push_config(make_push("b", "fresh"))
        await backend.put_push_config(make_push("orphan", "x"))  # no task row: nothing to send
        pending = await backend.list_pending_push()
        assert sorted((r.task_id, r.config_id) for r in pending) == [
            ("a", "behind"),
            ("b", "fresh"),
        ]
        await backend.set_push_delivered("a", "behind", 3)
        await backend.set_push_delivered("b", "fresh", 2)
        assert await backend.list_pending_push() == []
        a = await backend.get_task("a")
        assert a is not None
        await backend.commit([advance(a, TaskState.WORKING)])
        pending = await backend.list_pending_push()
        assert sorted((r.task_id, r.config_id) for r in pending) == [("a", "behind"), ("a", "done")]


async def test_list_unfinished(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        await seed_for_listing(backend)
        await backend.commit(
            [
                create("f", state=TaskState.INPUT_REQUIRED, at=T0),
                create("g", state=TaskState.FAILED, at=T0),
                create("h", state=TaskState.CANCELED, at=T0),
            ]
        )
        unfinished = await backend.list_unfinished()
        assert sorted(ids(unfinished)) == ["a", "b", "d"]
        assert all(r.state in (TaskState.SUBMITTED, TaskState.WORKING) for r in unfinished)


async def test_concurrent_commits_and_reads(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        seen: list[int] = []

        async def writer(n: int) -> None:
            first = create(f"w{n}")
            await backend.commit([first])
            await backend.commit([advance(first.record, TaskState.WORKING)])

        async def reader() -> None:
            for _ in range(10):
                seen.append((await backend.list_tasks(TaskQuery(page_size=5))).total_size)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, n)
            nursery.start_soon(reader)
        page = await backend.list_tasks(TaskQuery(state=TaskState.WORKING, page_size=100))
        assert page.total_size == 20
        assert all(0 <= s <= 20 for s in seen)


# --- SQLite only ----------------------------------------------------------------------


async def test_sqlite_survives_close_and_reopen(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "nested" / "dir" / "tasks.sqlite3"
        first = create("t1", owner="alice", events=2, push=(make_push("t1", "p"),))
        second = advance(first.record, TaskState.COMPLETED, events=3)
        async with open_sqlite_backend(path, synchronous="full") as db:
            await db.commit([first, create("t2")])
            await db.commit([second])
            await db.put_push_config(make_push("t2", "q", owner="bob"))
            await db.set_push_delivered("t1", "p", 4)
        assert path.exists()
        async with open_sqlite_backend(path) as db:
            assert await db.get_task("t1") == second.record
            assert await db.get_task("t2") == create("t2").record
            log = await db.read_events("t1", 0, 100)
            assert log == list(first.events + second.events)
            assert [e.seq for e in log] == [1, 2, 3, 4, 5]
            assert await db.get_push_config("t1", "p") == make_push("t1", "p", delivered=4)
            assert [r.config_id for r in await db.list_pending_push()] == ["p", "q"]
            assert ids(await db.list_unfinished()) == ["t2"]
            # Writes keep working on the reopened file.
            await db.commit([advance(second.record, TaskState.COMPLETED)])
            assert (await db.get_task("t1")).seq == 6  # type: ignore[union-attr]


async def test_sqlite_file_is_wal_with_schema_version(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "tasks.sqlite3"
        async with open_sqlite_backend(path) as db:
            await db.commit([create("t1")])
            conn = sqlite3.connect(path)
            try:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                assert conn.execute("SELECT task_id FROM tasks").fetchall() == [("t1",)]
            finally:
                conn.close()


async def test_sqlite_refuses_unknown_schema_version(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "tasks.sqlite3"
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        with pytest.raises(RuntimeError, match="v99"):
            async with open_sqlite_backend(path):
                pass


async def test_sqlite_rejects_bad_synchronous(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(ValueError, match="synchronous"):
            async with open_sqlite_backend(tmp_path / "x.sqlite3", synchronous="off"):  # type: ignore[arg-type]
                pass


async def test_closed_backend_refuses_calls(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_sqlite_backend(tmp_path / "tasks.sqlite3") as db:
            pass
        with pytest.raises(trio.ClosedResourceError):
            await db.get_task("t1")
        async with open_memory_backend() as memory:
            pass
        with pytest.raises(trio.ClosedResourceError):
            await memory.commit([create("t1")])


async def test_dispatch_state_round_trips(backend: TaskBackend) -> None:
    with trio.fail_after(TIMEOUT):
        first = create("t1")
        await backend.commit([first])
        assert (await backend.get_task("t1")).dispatch == DispatchState()  # type: ignore[union-attr]
        dispatch = DispatchState(
            route=Route(priority=5, capabilities=("gpu", "py"), worker="w1", agent="echo"),
            attempts=2,
            lease=Lease(worker_id="w1", attempt_id="a2", expires_at=T0 + 30, in_process=True),
            last_attempt_id="a2",
            claim_artifacts=(("art-1", 3), ("art-2", 1)),
        )
        leased = TaskRecord(task=first.record.task, owner="", seq=1, created_at=T0,
                            status_at=T0, dispatch=dispatch, version=2)
        await backend.commit([TaskWrite(record=leased, events=(), expected_seq=1,
                                        expected_version=1)])
        got = await backend.get_task("t1")
        assert got is not None and got.dispatch == dispatch
        assert [r.dispatch for r in await backend.list_unfinished()] == [dispatch]


def drop_push_claims(conn: sqlite3.Connection) -> None:
    """Make a file's push_configs table what it was before schema v4."""
    for column in ("claim_owner", "claim_token", "claim_expires"):
        conn.execute(f"ALTER TABLE push_configs DROP COLUMN {column}")


async def test_sqlite_migrates_a_v1_file(tmp_path: Path) -> None:
    """A file written by schema v1 (no dispatch column) opens, keeps its tasks, and
    takes dispatch state."""
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "tasks.sqlite3"
        async with open_sqlite_backend(path) as db:
            await db.commit([create("t1")])
        conn = sqlite3.connect(path)
        conn.execute("ALTER TABLE tasks DROP COLUMN dispatch_json")
        conn.execute("ALTER TABLE tasks DROP COLUMN version")
        drop_push_claims(conn)
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
        async with open_sqlite_backend(path) as db:
            got = await db.get_task("t1")
            assert got is not None and got.dispatch == DispatchState()
            leased = TaskRecord(task=got.task, owner="", seq=1, created_at=T0, status_at=T0,
                                dispatch=DispatchState(attempts=1), version=2)
            await db.commit([TaskWrite(record=leased, events=(), expected_seq=1,
                                       expected_version=1)])
            assert (await db.get_task("t1")).dispatch.attempts == 1  # type: ignore[union-attr]
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()


async def test_sqlite_migrates_a_v2_file_versions_from_seq(tmp_path: Path) -> None:
    """A file written by schema v2 (no version column) opens; each row's version starts
    at its sequence number and writes compare-and-set on it from there."""
    with trio.fail_after(TIMEOUT):
        path = tmp_path / "tasks.sqlite3"
        first = create("t1", events=3)
        async with open_sqlite_backend(path) as db:
            await db.commit([first])
        conn = sqlite3.connect(path)
        conn.execute("ALTER TABLE tasks DROP COLUMN version")
        drop_push_claims(conn)
        conn.execute("PRAGMA user_version = 2")
        conn.commit()
        conn.close()
        async with open_sqlite_backend(path) as db:
            got = await db.get_task("t1")
            assert got == attrs.evolve(first.record, version=3)
            await db.commit([lease_write(got, "a")])
            with pytest.raises(ConflictError):
                await db.commit([lease_write(got, "b")])
            assert (await db.get_task("t1")).version == 4  # type: ignore[union-attr]
