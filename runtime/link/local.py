"""The worker link inside the server process: how the embedded workers connect.

`python -m runtime server` runs its agent on `--local-workers N` workers. Each is
a worker like any remote one (`runtime.worker.open_worker`: Registrar, Heartbeat,
TaskClaimer, sessions, OutputStreamer, StatusReporter) and the server answers it
with the same `LinkConnection` as a WebSocket worker, so local and remote
execution share one code path: claims, leases, fencing, output dedup, release.
Only the wire is missing: frames are handed over as models, not encoded as JSON,
and nothing can drop them in between.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import trio

from actors.worker.link_port import LinkDown, Push
from protocol.worker_link import EmptyReply, LinkModel
from runtime.link.endpoint import LinkConnection, WorkerLinkEndpoint
from runtime.supervisor import unwrap_single

__all__ = ["InProcessLink", "open_in_process_link"]

log = logging.getLogger(__name__)


class InProcessLink:
    """A `runtime.worker.ws_link.Connection` that calls the server's `LinkConnection` directly."""

    def __init__(self, endpoint: WorkerLinkEndpoint, *, push_queue: int = 64,
                 durable_acks: bool = False, in_process: bool | None = None) -> None:
        self._push_send, self._push_receive = trio.open_memory_channel[Push](push_queue)
        # Same process, same fate: acks need not wait for the commit, and a restarted
        # server knows the worker's leases ended with it. A test whose worker outlives
        # its server passes durable_acks=True and is treated as a remote worker (unless
        # it says `in_process`). On a store other replicas write too, the server's own
        # workers want durable acks as well: a write another replica's write beat is
        # built again only if it is waited for (actors.task_store).
        self.connection = LinkConnection(
            endpoint, self._deliver_push, principal="in-process", durable_acks=durable_acks,
            in_process=not durable_acks if in_process is None else in_process)
        self._closed = trio.Event()

    @property
    def pushes(self) -> trio.MemoryReceiveChannel[Push]:
        return self._push_receive

    async def request(self, op: str, body: LinkModel) -> LinkModel:
        if self._closed.is_set():
            raise LinkDown("the in-process link is closed")
        reply = await self.connection.handle(op, body)
        return reply if reply is not None else EmptyReply()

    async def serve(self) -> None:
        await self._closed.wait()
        raise LinkDown("the in-process link is closed")

    def close(self) -> None:
        self._closed.set()
        self._push_send.close()

    async def _deliver_push(self, op: str, body: LinkModel) -> None:
        try:
            self._push_send.send_nowait(body)  # type: ignore[arg-type]
        except trio.WouldBlock:
            log.warning("push queue full; %s dropped", op, extra={"op": op})
        except trio.ClosedResourceError:
            pass


@contextlib.asynccontextmanager
async def open_in_process_link(endpoint: WorkerLinkEndpoint, *, push_queue: int = 64,
                               durable_acks: bool = False, in_process: bool | None = None
                               ) -> AsyncIterator[InProcessLink]:
    """Connect an embedded worker to `endpoint`; it is unregistered on exit. Its leases
    end with the server process (`in_process`) unless it asks for `durable_acks`."""
    link = InProcessLink(endpoint, push_queue=push_queue, durable_acks=durable_acks,
                         in_process=in_process)
    try:
        with unwrap_single():  # a LinkDown from the caller's block comes out as itself
            async with trio.open_nursery() as nursery:
                link.connection.nursery = nursery
                yield link
                nursery.cancel_scope.cancel()
    finally:
        link.close()
        link.connection.disconnect()

