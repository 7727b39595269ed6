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
    the last `points` kept. `sample` adds the points due (one store query per ended
    state and step, whoever calls it); the first fills the window from the store, so
    a dashboard opened late still shows the last minutes."""

    def __init__(self, store: ServerTaskStore, *, step: float = 1.0, points: int = 300,
                 per_query: int = 500) -> None:
        self._store = store
        self._step = step
        self._points = points
        self._per_query = per_query
        self.series: collections.deque[dict[str, Any]] = collections.deque(maxlen=points)
        self._since: float | None = None
        self._lock = trio.Lock()

    async def sample(self) -> None:
        async with self._lock:
            now = self._store.now()
            if self._since is None:  # first look: the window so far, from the store
                await self._add(now - self._step * self._points, now, self._points)
            elif now - self._since >= self._step:
                await self._add(self._since, now, 1)
            else:
                return
            self._since = now

    async def _add(self, since: float, now: float, buckets: int) -> None:
        """Add `buckets` points for (since, now]: tasks ended in each, per second."""
        ended: list[TaskRecord] = []
        truncated: dict[TaskState, int] = {}
        for state in _ENDED:
            page = await self._store.list_tasks(TaskQuery(
                state=state, status_after=since, page_size=self._per_query))
            ended += [r for r in page.records if r.status_at < now]
            if page.next_cursor is not None:
                truncated[state] = page.total_size
        width = (now - since) / buckets
        slots: list[list[TaskRecord]] = [[] for _ in range(buckets)]
        for record in ended:
            slots[min(buckets - 1, max(0, int((record.status_at - since) / width)))].append(record)
        for i, records in enumerate(slots):
            counts = {state: sum(r.state is state for r in records) for state in _ENDED}
            if buckets == 1:  # more ended than one page holds: the page's total counts
                counts.update(truncated)
            latencies = [r.status_at - r.created_at for r in records]
            self.series.append({
                "t": since + (i + 1) * width,
                "completed": counts[TaskState.COMPLETED] / width,
                "failed": (counts[TaskState.FAILED] + counts[TaskState.REJECTED]) / width,
                "canceled": counts[TaskState.CANCELED] / width,
                "p50": _quantile(latencies, 0.5), "p95": _quantile(latencies, 0.95)})


async def snapshots(admin: AdminService, throughput: Throughput, *,
                    interval: float) -> AsyncIterator[bytes]:
    """SSE frames: a `snapshot` event now and every `interval` seconds after."""
    while True:
        await throughput.sample()
        unfinished = await admin.unfinished()
        body = {
            "replica": admin.replica_id, "workers": admin.workers(),
            "queue": await admin.queue(limit=50, unfinished=unfinished),
            "leases": await admin.leases(unfinished=unfinished),
            "tasks": await admin.recent(limit=25), "throughput": list(throughput.series),
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
