"""A server's graceful stop, first half: handing its work over before the tree stops.

In order: the dispatcher drains (no offers, claims refused, a drain push to every
worker, so even a worker too old to move stops claiming here); the embedded
workers stop their sessions and the server ends their leases at once, queueing
their tasks again (for the other replicas on a shared database) instead of
leaving them until the leases run out; every remote worker is told ``goaway``
and moves to another replica at once, its sessions running on. Each wait is
bounded, so a stuck worker delays the stop by at most `handover_timeout`.
"""

from __future__ import annotations

import logging

import attrs
import trio

from actors.dispatcher import Dispatcher
from runtime.link.endpoint import WorkerLinkEndpoint

__all__ = ["LocalStops", "hand_over"]

log = logging.getLogger("runtime.server")  # the server's log: one place to look

REASON = "the server is shutting down"


@attrs.define(eq=False)
class LocalStops:
    """The graceful stop as the embedded workers see it: `requested` tells them to
    stop their sessions; each says `one_stopped` once it has."""

    requested: trio.Event = attrs.Factory(trio.Event)
    stopped: int = 0
    _changed: trio.Event = attrs.Factory(trio.Event)

    def one_stopped(self) -> None:
        self.stopped += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_stopped(self, count: int) -> None:
        """Until `count` embedded workers have stopped."""
        while self.stopped < count:
            await self._changed.wait()


async def hand_over(dispatcher: Dispatcher, endpoint: WorkerLinkEndpoint, local: LocalStops,
                    *, local_workers: int, drain_timeout: float,
                    handover_timeout: float) -> dict[str, object]:
    """Hand the server's work over (see the module docstring); what it did, for the
    server's last log line."""
    done: dict[str, object] = {"requeued": 0, "workers_moved": 0}
    dispatcher.drain(REASON)
    with trio.move_on_after(drain_timeout):
        await endpoint.wait_pushes_sent()
    local.requested.set()
    with trio.move_on_after(handover_timeout):
        await local.wait_stopped(local_workers)
    try:
        done["requeued"] = await dispatcher.requeue_in_process()
    except Exception as exc:  # the store is down: the next start (or the reaper) does it
        log.warning("could not queue the embedded workers' tasks again: %r", exc,
                    extra={"error": repr(exc)})
    with trio.move_on_after(handover_timeout):
        done["workers_moved"] = await endpoint.go_away(REASON)
        await endpoint.wait_workers_gone()
    done["graceful"] = True
    return done
