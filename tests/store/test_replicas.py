"""Several `ServerTaskStore`s on one PostgreSQL database: server replicas in one
process, each with its own backend (own pool, own connections), racing on the same
rows for real. The server-level replica tests are in tests/test_replicas.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from actors.store_port import ConflictError, DispatchState, Lease
from actors.task_store import ServerTaskStore
from protocol.models import Task, TaskState, TaskStatus
from runtime.store.postgres import open_postgres_backend

TIMEOUT = 20


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def lease(worker: str) -> Lease:
    return Lease(worker_id=worker, attempt_id=f"{worker}-1", expires_at=2e9)


@asynccontextmanager
async def replica(url: str, **options: object) -> AsyncIterator[ServerTaskStore]:
    """A running store on a backend of its own."""
    async with open_postgres_backend(url) as backend, trio.open_nursery() as nursery:
        store = ServerTaskStore(backend, **options)  # type: ignore[arg-type]
        await nursery.start(store.run)
        yield store
        nursery.cancel_scope.cancel()


async def test_two_stores_racing_a_dispatch_only_write(postgres_url: str) -> None:
    """Both stores hold the task at version 1 and store a lease on it at once, without an
    event (a claim): exactly one write lands, the other is refused."""
    with trio.fail_after(TIMEOUT):
        async with replica(postgres_url) as a, replica(postgres_url) as b:
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
