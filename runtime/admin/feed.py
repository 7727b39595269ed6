"""What the dashboard shows, as server-sent events: snapshots and a task's log.

`snapshots` sends the whole picture (workers, queue, running tasks, recent tasks,
throughput) every `interval` seconds: simple for the page, and cheap next to what
a person can read. `Throughput` turns the store's task list into a per-interval
series of tasks ended and their latency (created to ended), shared by every open
dashboard; it reads the store, so on several replicas it counts them all.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import trio

from actors.admin import AdminService
from actors.store_port import TaskQuery, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.models import TaskState, dump
from protocol.sse import encode_comment, encode_event

__all__ = ["Throughput", "snapshots", "task_events"]

_ENDED = (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class Throughput:
    """Tasks ended per second and their latency, one point per `step` seconds,
    the last `points` kept. `sample` adds the points due (at most one store query
    per state per step, whoever calls it)."""

    def __init__(self, store: ServerTaskStore, *, step: float = 1.0, points: int = 300,
                 per_query: int = 500) -> None:
        self._store = store
        self._step = step
        self._per_query = per_query
        self.series: collections.deque[dict[str, Any]] = collections.deque(maxlen=points)
        self._since: float | None = None
        self._lock = trio.Lock()

    async def sample(self) -> None:
        async with self._lock:
            now = self._store.now()
            if self._since is None:
                self._since = now
                return
            if now - self._since < self._step:
                return
            since, self._since = self._since, now
            ended: list[TaskRecord] = []
            counts: dict[str, int] = {}
            for state in _ENDED:
                page = await self._store.list_tasks(TaskQuery(
                    state=state, status_after=since, page_size=self._per_query))
                mine = [r for r in page.records if r.status_at < now]
                counts[state.value] = len(mine) if page.next_cursor is None else page.total_size
                ended += mine
            latencies = [r.status_at - r.created_at for r in ended]
            span = now - since
            self.series.append({
                "t": now, "completed": counts[TaskState.COMPLETED.value] / span,
                "failed": (counts[TaskState.FAILED.value] + counts[TaskState.REJECTED.value])
                / span,
                "canceled": counts[TaskState.CANCELED.value] / span,
                "p50": _quantile(latencies, 0.5), "p95": _quantile(latencies, 0.95)})


async def snapshots(admin: AdminService, throughput: Throughput, *,
                    interval: float) -> AsyncIterator[bytes]:
    """SSE frames: a `snapshot` event now and every `interval` seconds after."""
    while True:
        await throughput.sample()
        body = {
            "replica": admin.replica_id, "workers": admin.workers(),
            "queue": await admin.queue(limit=50), "leases": await admin.leases(),
            "tasks": await admin.recent(limit=50), "throughput": list(throughput.series),
        }
        yield encode_event(json.dumps(body, separators=(",", ":")), event="snapshot")
        await trio.sleep(interval)


async def task_events(admin: AdminService, task_id: str, *, after: int = 0,
                      keepalive: float = 15.0) -> AsyncIterator[bytes]:
    """SSE frames of the task's log from `after`: each event as it is committed
    (`id:` its sequence number), then an `end` event once the task has ended."""
    while True:
        events = None
        with trio.move_on_after(keepalive):
            events = await admin.wait_events(task_id, after)
        if events is None:
            yield encode_comment("keep-alive")
            continue
        if not events:
            yield encode_event(json.dumps({"seq": after}), event="end")
            return
        for stored in events:
            after = stored.seq
            data = {"seq": stored.seq, "event": dump(stored.event)}
            yield encode_event(json.dumps(data, separators=(",", ":")), event="event",
                               id=str(stored.seq))
