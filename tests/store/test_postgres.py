"""PostgreSQL-only behaviour: migrations under concurrent start, errors for people,
lost connections and outages, replicas racing on one task. The shared contract is
in test_backends.py. Real server, real connections: no mock clock (waits are on
real sockets), every test bounded."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actors.store_port import ConflictError
from protocol.models import TaskState
from runtime.store import StoreOpenError
from runtime.store.postgres import (
    PostgresBackend,
    StoreUnavailableError,
    migrate,
    open_postgres_backend,
)
from runtime.store.postgres_driver import display_url
from runtime.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from tests.postgres import ADMIN_URL
from tests.store.test_backends import advance, create

TIMEOUT = 20
FAST = {"backoff": (0.05, 0.2), "rng": random.Random(7), "connect_timeout": 5.0}


def dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


async def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (autocommit), off the trio thread."""

    def run() -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    return await trio.to_thread.run_sync(run)


async def store_pids(url: str, *, waiting_on_lock: bool = False) -> list[int]:
    extra = " AND wait_event_type = 'Lock'" if waiting_on_lock else ""
    rows = await sql(ADMIN_URL, "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                     " AND application_name = 'trio-a2a'" + extra, (dbname(url),))
    return [pid for (pid,) in rows]


async def terminate(url: str, pids: list[int]) -> None:
    for pid in pids:
        await sql(ADMIN_URL, "SELECT pg_terminate_backend(%s)", (pid,))


async def wait_until(predicate: Callable[[], Any]) -> None:
    """Poll the server (its state has no event to wait on); callers bound the time."""
    while True:
        if await predicate():
            return
        await trio.sleep(0.01)


class LockHolder:
    """A connection of the test's that holds a row lock on a task until released."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)

    async def lock(self, task_id: str) -> None:
        await trio.to_thread.run_sync(
            lambda: self.conn.execute("SELECT 1 FROM tasks WHERE task_id = %s FOR UPDATE",
                                      (task_id,)))

    async def release(self) -> None:
        await trio.to_thread.run_sync(self.conn.commit)

    def close(self) -> None:
        self.conn.close()


# --- opening ---------------------------------------------------------------------------


async def test_replicas_starting_at_once_apply_the_schema_once(
    fresh_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime.store.postgres_schema")
    replicas = 6
    opened = 0
    all_open = trio.Event()

    async def replica(n: int) -> None:
        nonlocal opened
        async with open_postgres_backend(fresh_postgres_url) as backend:
            await backend.commit([create(f"r{n}")])
            opened += 1
            if opened == replicas:
                all_open.set()
            await all_open.wait()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for n in range(replicas):
                nursery.start_soon(replica, n)
        rows = await sql(fresh_postgres_url, "SELECT version, description FROM schema_version")
        assert rows == [(v + 1, d) for v, (d, _) in enumerate(MIGRATIONS)]
        applied = [r for r in caplog.records if "applied v" in r.getMessage()]
        assert len(applied) == SCHEMA_VERSION
        (count,) = await sql(fresh_postgres_url, "SELECT count(*) FROM tasks")
        assert count == (replicas,)


async def test_migrate_then_open_without_migrating(fresh_postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(StoreOpenError) as info:
            async with open_postgres_backend(fresh_postgres_url, run_migrations=False):
                pass
        assert str(info.value) == (
            f"cannot open the task store {display_url(fresh_postgres_url)}: task store schema "
            f"v0, this build needs v{SCHEMA_VERSION}; run `python -m runtime migrate`")
        assert await migrate(fresh_postgres_url) == (0, SCHEMA_VERSION)
        assert await migrate(fresh_postgres_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
        async with open_postgres_backend(fresh_postgres_url, run_migrations=False) as backend:
            await backend.commit([create("t1")])
            assert (await backend.get_task("t1")) == create("t1").record


async def test_a_v1_database_migrates_versions_from_seq(fresh_postgres_url: str) -> None:
    """Rows stored before row versions existed start at version = seq, and writes
    compare-and-set on it from there."""
    first = create("t1", events=3)
    r = first.record

    def v1() -> None:
        with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_version (version integer PRIMARY KEY,"
                         " description text NOT NULL, applied_at timestamptz NOT NULL"
                         " DEFAULT now())")
            conn.execute(MIGRATIONS[0][1])  # type: ignore[arg-type]
            conn.execute("INSERT INTO schema_version (version, description) VALUES (1, %s)",
                         (MIGRATIONS[0][0],))
            conn.execute(
                "INSERT INTO tasks (task_id, context_id, owner, state, seq, created_at,"
                " status_at, task_json) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (r.task_id, r.task.context_id, r.owner, r.state.value, r.seq, r.created_at,
                 r.status_at, r.task.model_dump_json(by_alias=True, exclude_none=True)))

    with trio.fail_after(TIMEOUT):
        await trio.to_thread.run_sync(v1)
        assert await migrate(fresh_postgres_url) == (1, SCHEMA_VERSION)
        async with open_postgres_backend(fresh_postgres_url) as backend:
            got = await backend.get_task("t1")
            assert got is not None and got == attrs.evolve(r, version=3)
            await backend.commit([advance(got, TaskState.WORKING)])
            with pytest.raises(ConflictError):
                await backend.commit([advance(got, TaskState.CANCELED)])
            assert (await backend.get_task("t1")).version == 4  # type: ignore[union-attr]


async def test_a_newer_schema_is_refused(fresh_postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        await migrate(fresh_postgres_url)
        await sql(fresh_postgres_url,
                  "INSERT INTO schema_version (version, description) VALUES (99, 'future')")
        with pytest.raises(StoreOpenError, match="schema v99 is newer than this build"):
            async with open_postgres_backend(fresh_postgres_url):
                pass
        with pytest.raises(StoreOpenError, match="schema v99 is newer than this build"):
            await migrate(fresh_postgres_url)


async def test_unreachable_server_is_named_without_the_password() -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/tasks"
    with trio.fail_after(TIMEOUT), pytest.raises(StoreOpenError) as info:
        async with open_postgres_backend(url):
            pass
    message = str(info.value)
    assert message.startswith(
        "cannot open the task store postgresql://postgres@127.0.0.1:1/tasks: connection ")
    assert message.endswith(
        "; check that PostgreSQL is running there and accepts connections, or fix "
        "--database-url / TRIO_A2A_DATABASE_URL")
    assert "refused" in message
    assert "s3cret" not in message and "\n" not in message
    with trio.fail_after(TIMEOUT), pytest.raises(StoreOpenError, match="127.0.0.1:1/tasks"):
        await migrate(url)


async def test_missing_database_says_to_create_it() -> None:
    url = make_conninfo(ADMIN_URL, dbname="trio_a2a_no_such_db")
    with trio.fail_after(TIMEOUT), pytest.raises(StoreOpenError) as info:
        async with open_postgres_backend(url):
            pass
    assert 'database "trio_a2a_no_such_db" does not exist' in str(info.value)
    assert str(info.value).endswith("; create the database (createdb) or fix --database-url")


def test_display_url_drops_the_password() -> None:
    assert display_url("postgresql://u:pw@db.example:6543/tasks?sslmode=require") == (
        "postgresql://u@db.example:6543/tasks")
    assert display_url("host=/run/postgresql dbname=t password=pw") == (
        "postgresql:///t?host=/run/postgresql")
    assert display_url("postgresql://[::1]/t") == "postgresql://[::1]/t"


# --- lost connections ------------------------------------------------------------------


async def test_terminated_connections_are_replaced_without_losing_data(postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(postgres_url, **FAST) as backend:
            first = create("t1", events=2)
            await backend.commit([first])

            async def reads() -> None:
                async with trio.open_nursery() as nursery:
                    for _ in range(4):
                        nursery.start_soon(backend.get_task, "t1")

            await reads()  # several pooled connections now
            pids = await store_pids(postgres_url)
            assert len(pids) >= 2
            await terminate(postgres_url, pids)
            await wait_until(lambda: _none_left(postgres_url, pids))
            await reads()
            assert await backend.get_task("t1") == first.record
            second = advance(first.record, TaskState.WORKING)
            await backend.commit([second])
            assert [e.seq for e in await backend.read_events("t1", 0, 10)] == [1, 2, 3]
            assert backend.healthy
            assert backend.statistics()["replaced_connections"] >= len(pids)
            assert backend.statistics()["outages"] == 0


async def _none_left(url: str, pids: list[int]) -> bool:
    return not set(pids) & set(await store_pids(url))


async def test_commit_cut_off_before_commit_is_retried_once(postgres_url: str) -> None:
    """The connection dies while the commit waits on a row lock: the transaction is
    rolled back by the server, and the retry on a fresh connection stores it once."""
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(postgres_url, **FAST) as backend:
            first = create("t1")
            await backend.commit([first])
            holder = LockHolder(postgres_url)
            try:
                await holder.lock("t1")
                second = advance(first.record, TaskState.WORKING, events=2)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(backend.commit, [second])
                    await wait_until(lambda: store_pids(postgres_url, waiting_on_lock=True))
                    (victim,) = await store_pids(postgres_url, waiting_on_lock=True)
                    await terminate(postgres_url, [victim])

                    async def retried() -> bool:
                        return bool(set(await store_pids(postgres_url, waiting_on_lock=True))
                                    - {victim})

                    await wait_until(retried)
                    await holder.release()
            finally:
                holder.close()
            assert await backend.get_task("t1") == second.record
            assert [e.seq for e in await backend.read_events("t1", 0, 10)] == [1, 2, 3]


async def test_cancelled_commit_stores_nothing_and_the_pool_goes_on(postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(postgres_url, **FAST) as backend:
            first = create("t1")
            await backend.commit([first])
            holder = LockHolder(postgres_url)
            try:
                await holder.lock("t1")
                with trio.move_on_after(0.3) as scope:
                    await backend.commit([advance(first.record, TaskState.WORKING)])
                assert scope.cancelled_caught
                await holder.release()
            finally:
                holder.close()
            assert await backend.get_task("t1") == first.record
            assert [e.seq for e in await backend.read_events("t1", 0, 10)] == [1]
            await backend.commit([advance(first.record, TaskState.COMPLETED)])
            assert (await backend.get_task("t1")).state is TaskState.COMPLETED  # type: ignore[union-attr]


async def test_outage_fails_fast_logs_once_and_recovers(
    fresh_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runtime.store.postgres_pool")
    name = dbname(fresh_postgres_url)
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(fresh_postgres_url, **FAST) as backend:
            first = create("t1", owner="alice")
            await backend.commit([first])
            await sql(ADMIN_URL, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                await terminate(fresh_postgres_url, await store_pids(fresh_postgres_url))
                with pytest.raises(StoreUnavailableError, match="unreachable"):
                    await backend.get_task("t1")
                assert not backend.healthy
                for _ in range(3):  # no connect attempt per call while it is down
                    with trio.fail_after(0.05), pytest.raises(StoreUnavailableError):
                        await backend.commit([create("t2")])
                await trio.sleep(0.3)  # a few background retries fail
            finally:
                await sql(ADMIN_URL, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await wait_until(_healthy(backend))
            assert await backend.get_task("t1") == first.record
            assert await backend.get_task("t2") is None
            assert backend.statistics()["outages"] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith(
        f"lost the task store database {display_url(fresh_postgres_url)} (")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and infos[0].startswith("reconnected to the task store database")


def _healthy(backend: PostgresBackend) -> Callable[[], Any]:
    async def check() -> bool:
        await trio.lowlevel.checkpoint()
        return backend.healthy

    return check


# --- replicas --------------------------------------------------------------------------


async def test_two_replicas_racing_on_one_task(postgres_url: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_postgres_backend(postgres_url) as a, \
                open_postgres_backend(postgres_url) as b:
            first = create("t1")
            await a.commit([first])
            seen = await b.get_task("t1")
            assert seen == first.record
            mine = advance(first.record, TaskState.WORKING)
            theirs = advance(seen, TaskState.CANCELED)
            await a.commit([mine])
            with pytest.raises(ConflictError):
                await b.commit([theirs])
            assert await b.get_task("t1") == mine.record
            with pytest.raises(ConflictError):
                await b.commit([create("t1")])
