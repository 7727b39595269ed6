"""Several `ServerTaskStore`s on one PostgreSQL database: server replicas in one
process, each with its own backend (own pool, own connections), racing on the same
rows for real. The server-level replica tests are in tests/test_replicas.py."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from actors.store_port import ConflictError, DispatchState, Lease, TaskChange, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.models import (
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from runtime.store.postgres import open_postgres_backend
from tests.postgres import ADMIN_URL
from tests.store.test_postgres import dbname, sql, wait_until

TIMEOUT = 20


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def lease(worker: str) -> Lease:
    return Lease(worker_id=worker, attempt_id=f"{worker}-1", expires_at=2e9)


@asynccontextmanager
async def replica(url: str, *, backoff: tuple[float, float] = (0.5, 30.0),
                  rng: random.Random | None = None, **options: Any
                  ) -> AsyncIterator[ServerTaskStore]:
    """A running store on a backend of its own."""
    async with open_postgres_backend(url, backoff=backoff, rng=rng) as backend, \
            trio.open_nursery() as nursery:
        store = ServerTaskStore(backend, **options)
        await nursery.start(store.run)
        yield store
        nursery.cancel_scope.cancel()


async def test_two_stores_racing_a_dispatch_only_write(postgres_url: str) -> None:
    """Both stores hold the task at version 1 and store a lease on it at once, without an
    event (a claim): exactly one write lands, the other is refused (not rebuilt here:
    conflict_retries=0)."""
    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url, conflict_retries=0) as a, \
                replica(postgres_url, conflict_retries=0) as b:
            await a.create_task(new_task("t1"), owner="")
            for store in (a, b):
                assert (await store.get_task("t1")).version == 1  # type: ignore[union-attr]
            outcomes: dict[str, str] = {}

            async def claim(name: str, store: ServerTaskStore) -> None:
                try:
                    await store.write("t1", (), dispatch=DispatchState(attempts=1,
                                                                       lease=lease(name)))
                    outcomes[name] = "stored"
                except ConflictError:
                    outcomes[name] = "conflict"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim, "a", a)
                nursery.start_soon(claim, "b", b)
            assert sorted(outcomes.values()) == ["conflict", "stored"], outcomes
            (winner,) = [name for name, outcome in outcomes.items() if outcome == "stored"]
            stored = await a.backend.get_task("t1")
            assert stored is not None and (stored.version, stored.seq) == (2, 1)
            assert stored.dispatch.lease == lease(winner)


async def test_racing_claims_are_fenced_after_the_rebuild(postgres_url: str) -> None:
    """The same race with rebuilding on: the losing claim is built again on the winner's
    record, and its check (the task must not be leased) refuses it."""

    class Taken(Exception):
        pass

    def queued(record: TaskRecord) -> None:
        if record.dispatch.lease is not None:
            raise Taken(record.dispatch.lease.worker_id)

    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url) as a, replica(postgres_url) as b:
            await a.create_task(new_task("t1"), owner="")
            await b.get_task("t1")
            outcomes: dict[str, str] = {}

            async def claim(name: str, store: ServerTaskStore) -> None:
                try:
                    await store.write("t1", (), check=queued,
                                      dispatch=DispatchState(attempts=1, lease=lease(name)))
                    outcomes[name] = "stored"
                except Taken as exc:
                    outcomes[name] = f"taken by {exc}"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim, "a", a)
                nursery.start_soon(claim, "b", b)
            (winner,) = [name for name, outcome in outcomes.items() if outcome == "stored"]
            (loser,) = set(outcomes) - {winner}
            assert outcomes[loser] == f"taken by {winner}"
            stored = await a.backend.get_task("t1")
            assert stored is not None and stored.version == 2
            assert stored.dispatch.lease == lease(winner)


# --- the change feed (LISTEN/NOTIFY) ---------------------------------------------------


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


async def follow_until(store: ServerTaskStore, task_id: str, after: int, seq: int
                       ) -> list[int]:
    """The sequence numbers `store` serves after `after`, up to `seq`."""
    seen: list[int] = []
    while not seen or seen[-1] < seq:
        events = await store.wait_events(task_id, seen[-1] if seen else after)
        seen.extend(e.seq for e in events)
    return seen


async def test_a_commit_on_one_replica_wakes_a_subscriber_on_another(postgres_url: str) -> None:
    """No poll could do it in time (poll_interval 60 s): the notification does."""
    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url, poll_interval=60) as a, \
                replica(postgres_url, poll_interval=60) as b:
            await a.create_task(new_task("t1"), owner="")
            assert [e.seq for e in await b.wait_events("t1", 0)] == [1]
            async with trio.open_nursery() as nursery:
                seen: list[int] = []

                async def follow() -> None:
                    seen.extend(await follow_until(b, "t1", 1, 5))

                nursery.start_soon(follow)
                await a.write("t1", [status("t1", TaskState.WORKING)])
                await a.write("t1", (), dispatch=DispatchState(attempts=1, lease=lease("w")))
                await a.write("t1", [status("t1", TaskState.INPUT_REQUIRED),
                                     status("t1", TaskState.WORKING)])
                await a.write("t1", [status("t1", TaskState.COMPLETED)])
            assert seen == [2, 3, 4, 5]
            assert await b.get_task("t1") == await a.get_task("t1")
            assert b.statistics().remote_changes >= 4
            assert a.statistics().remote_changes == 0  # its own are skipped


async def listen_pids(url: str) -> list[int]:
    rows = await sql(ADMIN_URL, "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                     " AND query LIKE 'LISTEN %%'", (dbname(url),))
    return [pid for (pid,) in rows]


async def test_a_lost_feed_connection_reconnects_and_catches_up(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The listening connection is terminated and a commit lands meanwhile: the feed
    reconnects with backoff, resyncs, and the subscriber gets the event, long before
    the poll (60 s) would have found it."""
    caplog.set_level(logging.INFO, logger="runtime.store.postgres_feed")
    fast = {"backoff": (0.05, 0.2), "rng": random.Random(3)}
    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url, poll_interval=60) as a, \
                replica(postgres_url, poll_interval=60, **fast) as b:
            await a.create_task(new_task("t1"), owner="")
            await b.get_task("t1")
            async with trio.open_nursery() as nursery:
                seen: list[int] = []

                async def follow() -> None:
                    seen.extend(await follow_until(b, "t1", 1, 2))

                nursery.start_soon(follow)
                pids = await listen_pids(postgres_url)
                assert len(pids) == 2  # one per replica
                for pid in pids:  # a's too: it must come back as well
                    await sql(ADMIN_URL, "SELECT pg_terminate_backend(%s)", (pid,))
                await a.write("t1", [status("t1", TaskState.WORKING)])
            assert seen == [2]
            await wait_until(lambda: _listening(postgres_url, 2))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("change feed of ") and " lost (" in m for m in messages), messages
    assert any(" listening again after " in m for m in messages), messages


async def _listening(url: str, n: int) -> bool:
    return len(await listen_pids(url)) == n


async def test_a_task_id_too_long_to_notify_is_caught_up_by_resync(postgres_url: str) -> None:
    task_id = "x" * 9000  # over PostgreSQL's 8000-byte payload limit
    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url, poll_interval=60) as a, \
                replica(postgres_url, poll_interval=60) as b:
            await a.create_task(new_task(task_id), owner="")
            await b.get_task(task_id)
            async with trio.open_nursery() as nursery:
                seen: list[int] = []

                async def follow() -> None:
                    seen.extend(await follow_until(b, task_id, 1, 2))

                nursery.start_soon(follow)
                await a.write(task_id, [status(task_id, TaskState.WORKING)])
            assert seen == [2]


def test_notification_payloads() -> None:
    from runtime.store.postgres_feed import parse_payload

    assert parse_payload("7 3 abc t 1") == (
        "abc", TaskChange(task_id="t 1", version=7, seq=3))
    assert parse_payload("0 0 abc") == ("abc", None)
    assert parse_payload("garbage") is None
