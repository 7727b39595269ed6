"""The real server core for tests on virtual time, without HTTP: the task store
(memory or a SQLite file), the dispatcher, the worker-link endpoint and the A2A
service, on the mock clock. Workers reach it over in-process links; tests that
need a wire they can break wrap those links."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import attrs
import trio

from actors.a2a_service import A2AService
from actors.dispatcher import Dispatcher, RunRequest
from actors.store_port import DispatchState, TaskBackend
from actors.task_store import ServerTaskStore
from actors.worker import Push
from protocol import worker_link as wl
from protocol.models import Message, Part, Role, Task, TaskState, TaskStatus
from runtime.http.auth import TokenAuth
from runtime.link.endpoint import WorkerLinkEndpoint
from runtime.link.local import InProcessLink, open_in_process_link
from runtime.store import open_memory_backend
from runtime.worker import Connection

T0 = 1_800_000_000.0
"""The store's wall clock at virtual time 0."""


@attrs.define
class SimServer:
    store: ServerTaskStore
    dispatcher: Dispatcher
    endpoint: WorkerLinkEndpoint
    service: A2AService
    n: int = 0

    async def submit(self, text: str = "go") -> str:
        """Store and queue a task with one user message (ids t1, t2, ...)."""
        self.n += 1
        task_id = f"t{self.n}"
        msg = Message(message_id=f"m{self.n}", role=Role.USER, parts=[Part(text=text)],
                      task_id=task_id, context_id="c")
        await self.store.create_task(
            Task(id=task_id, context_id="c", status=TaskStatus(state=TaskState.SUBMITTED),
                 history=[msg]), owner="", dispatch=DispatchState())
        await self.dispatcher.submit(RunRequest(task_id=task_id))
        return task_id

    async def wait_done(self, task_id: str) -> Task:
        record = await self.store.wait_record(task_id, lambda r: r.state == TaskState.COMPLETED)
        return record.task


@contextlib.asynccontextmanager
async def open_sim_server(
    backend: Callable[[], AbstractAsyncContextManager[TaskBackend]] = open_memory_backend,
    ids: itertools.count[int] | None = None,
    *,
    lease_ttl: float = 30.0,
    reap_interval: float = 5.0,
    max_attempts: int = 3,
) -> AsyncIterator[SimServer]:
    """The core on `backend`, attempt ids att-1, att-2, ... from `ids` (and service
    ids id-1, id-2, ...)."""
    attempts = ids if ids is not None else itertools.count(1)
    service_ids = itertools.count(1)
    async with backend() as b, trio.open_nursery() as nursery:
        store = ServerTaskStore(b, clock=lambda: T0 + trio.current_time())
        await nursery.start(store.run)
        dispatcher = Dispatcher(store, lease_ttl=lease_ttl, reap_interval=reap_interval,
                                max_attempts=max_attempts,
                                new_id=lambda: f"att-{next(attempts)}")
        await nursery.start(dispatcher.run)
        endpoint = WorkerLinkEndpoint(dispatcher, store, worker_auth=TokenAuth({}))
        service = A2AService(store, dispatcher, new_id=lambda: f"id-{next(service_ids)}")
        yield SimServer(store, dispatcher, endpoint, service)
        nursery.cancel_scope.cancel()


class _PushLosingLink:
    """An in-process link whose pushes pass through a filter that may lose them
    (requests and their acks are untouched)."""

    def __init__(self, inner: InProcessLink, pushes: trio.MemoryReceiveChannel[Push]) -> None:
        self._inner = inner
        self._pushes = pushes

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._pushes

    async def request(self, op: str, body: wl.LinkModel) -> wl.LinkModel:
        return await self._inner.request(op, body)

    async def serve(self) -> None:
        await self._inner.serve()


def connect_losing_pushes(
    endpoint: WorkerLinkEndpoint, lose: Callable[[Push], bool],
    lost: list[tuple[float, Push]] | None = None,
) -> Callable[[], AbstractAsyncContextManager[Connection]]:
    """Connect a worker over the in-process link, losing the pushes `lose` picks (a
    proxy holding a stream back, a dropped frame); each lost one is noted in `lost`
    with the virtual time it was lost at."""

    async def forward(source: trio.MemoryReceiveChannel[Push],
                      sink: trio.MemorySendChannel[Push]) -> None:
        async with sink:
            async for push in source:
                if lose(push):
                    if lost is not None:
                        lost.append((trio.current_time(), push))
                else:
                    await sink.send(push)

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Connection]:
        async with open_in_process_link(endpoint, durable_acks=True) as link:
            send, receive = trio.open_memory_channel[Push](64)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward, link.pushes, send)
                yield _PushLosingLink(link, receive)
                nursery.cancel_scope.cancel()

    return connect
