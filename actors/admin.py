"""The admin service: what operators see of the server and may do to it.

One place for the operations of the admin API (`runtime/admin`), whichever binding
carries them (JSON-RPC, HTTP+JSON, the dashboard). It holds no state and writes
nothing itself: reads come from the task store, changes go through the actors that
own them (the dispatcher for leases and the queue, the A2A service for
cancellation, the worker link for connections), so an operator's change obeys the
same fencing and compare-and-set rules as everything else.

The queue and the leases are read from the store, so every replica on one database
shows the same; the workers are those connected to this replica.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import trio

from actors.a2a_service import A2AService
from actors.dispatch.admin import AdminRefused, WorkerView
from actors.dispatcher import Dispatcher
from actors.store_port import Route, StoredEvent, TaskQuery, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.errors import A2AError
from protocol.models import CancelTaskRequest, TaskState
from protocol.states import is_interrupted

__all__ = ["AdminRefused", "AdminService", "CancelFilter", "WorkerLinks", "states_from",
           "task_summary", "worker_summary"]

log = logging.getLogger(__name__)


class WorkerLinks(Protocol):
    """The worker link's port: close a remote worker's connections."""

    def close_worker(self, worker_id: str) -> int:
        """Close the worker's link connections to this process; how many closed."""
        ...


@attrs.frozen
class CancelFilter:
    """Which unfinished tasks a bulk cancel takes; every given field must match."""

    states: tuple[TaskState, ...] = ()
    context_id: str | None = None
    owner: str | None = None
    worker_id: str | None = None
    """Tasks whose current lease this worker holds."""
    agent: str | None = None
    capability: str | None = None
    queued: bool | None = None
    """True: only tasks waiting for a worker; False: only running ones."""
    limit: int = 1000

    def matches(self, record: TaskRecord) -> bool:
        d = record.dispatch
        lease = d.lease
        return ((not self.states or record.state in self.states)
                and (self.context_id is None or record.task.context_id == self.context_id)
                and (self.owner is None or record.owner == self.owner)
                and (self.worker_id is None or (lease is not None
                                                and lease.worker_id == self.worker_id))
                and (self.agent is None or d.route.agent == self.agent)
                and (self.capability is None or self.capability in d.route.capabilities)
                and (self.queued is None or self.queued == _is_queued(record)))


def _is_queued(record: TaskRecord) -> bool:
    return record.dispatch.lease is None and not is_interrupted(record.state)


def _route(route: Route) -> dict[str, Any]:
    return {"priority": route.priority, "agent": route.agent, "worker": route.worker,
            "capabilities": list(route.capabilities)}


def task_summary(record: TaskRecord, now: float) -> dict[str, Any]:
    """A task as the admin API lists it: state, route, attempts, lease, times."""
    d = record.dispatch
    lease = d.lease
    return {
        "id": record.task_id, "contextId": record.task.context_id,
        "state": record.state.value, "owner": record.owner,
        "createdAt": record.created_at, "statusAt": record.status_at,
        "route": _route(d.route), "attempts": d.attempts, "runAttempts": d.run_attempts,
        "lease": None if lease is None else {
            "workerId": lease.worker_id, "attemptId": lease.attempt_id,
            "expiresAt": lease.expires_at, "expiresIn": round(lease.expires_at - now, 3),
            "inProcess": lease.in_process},
    }


def worker_summary(view: WorkerView) -> dict[str, Any]:
    return {"workerId": view.worker_id, "name": view.name, "agents": list(view.agents),
            "capabilities": list(view.capabilities), "maxConcurrent": view.max_concurrent,
            "running": list(view.running), "load": round(view.load, 3),
            "offered": view.offered, "inProcess": view.in_process,
            "lastHeartbeat": view.last_heartbeat, "draining": view.draining}


class AdminService:
    """The admin operations over the dispatcher, the store, the service and the link.

    `cancel_concurrency` bounds how many cancellations a bulk cancel runs at once
    (each may wait up to the service's cancel timeout for its worker)."""

    def __init__(self, dispatcher: Dispatcher, store: ServerTaskStore, service: A2AService,
                 links: WorkerLinks, *, replica_id: str = "",
                 cancel_concurrency: int = 16) -> None:
        self._dispatcher = dispatcher
        self._store = store
        self._service = service
        self._links = links
        self.replica_id = replica_id
        self._cancel_limit = trio.CapacityLimiter(cancel_concurrency)

    @property
    def store(self) -> ServerTaskStore:
        return self._store

    # --- reads ----------------------------------------------------------------------

    def workers(self) -> list[dict[str, Any]]:
        """The workers connected to this replica, with their load and last heartbeat."""
        return [worker_summary(v) for v in self._dispatcher.worker_views()]

    async def unfinished(self) -> list[TaskRecord]:
        """Every unfinished task (one read, for `queue` and `leases` to share)."""
        return await self._store.list_unfinished()

    async def queue(self, *, limit: int = 100,
                    unfinished: list[TaskRecord] | None = None) -> list[dict[str, Any]]:
        """The tasks waiting for a worker, grouped by route, best first in each group
        (at most `limit` listed per route; `count` says how many wait)."""
        now = self._store.now()
        groups: dict[Route, list[TaskRecord]] = {}
        if unfinished is None:
            unfinished = await self.unfinished()
        for record in unfinished:
            if _is_queued(record):
                groups.setdefault(record.dispatch.route, []).append(record)
        out = []
        for route, records in sorted(groups.items(), key=lambda kv: -kv[0].priority):
            records.sort(key=lambda r: r.created_at)
            out.append({"route": _route(route), "count": len(records),
                        "tasks": [task_summary(r, now) for r in records[:limit]]})
        return out

    async def leases(self, *, expiring_within: float | None = None, retried: bool = False,
                     unfinished: list[TaskRecord] | None = None) -> list[dict[str, Any]]:
        """The running tasks, soonest expiry first: those whose lease runs out within
        `expiring_within` seconds and/or that were retried (more than one attempt)."""
        now = self._store.now()
        found = []
        if unfinished is None:
            unfinished = await self.unfinished()
        for record in unfinished:
            lease = record.dispatch.lease
            if lease is None:
                continue
            if expiring_within is not None and lease.expires_at - now > expiring_within:
                continue
            if retried and record.dispatch.attempts <= 1:
                continue
            found.append(record)
        found.sort(key=lambda r: r.dispatch.lease.expires_at)  # type: ignore[union-attr]
        return [task_summary(r, now) for r in found]

    async def recent(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The tasks whose status changed last, newest first."""
        page = await self._store.list_tasks(TaskQuery(page_size=limit))
        now = self._store.now()
        return [task_summary(r, now) for r in page.records]

    async def task(self, task_id: str) -> TaskRecord:
        record = await self._store.get_task(task_id)
        if record is None:
            raise AdminRefused("task_not_found", f"task {task_id!r} not found")
        return record

    async def wait_events(self, task_id: str, after_seq: int) -> list[StoredEvent]:
        """The task's committed events after `after_seq`, waiting for one; [] once it
        has ended and nothing newer exists."""
        try:
            return await self._store.wait_events(task_id, after_seq)
        except KeyError:
            raise AdminRefused("task_not_found", f"task {task_id!r} not found") from None

    # --- changes --------------------------------------------------------------------

    async def requeue(self, task_id: str, reason: str) -> dict[str, Any]:
        record = await self._dispatcher.requeue(task_id, reason or "no reason given")
        return task_summary(record, self._store.now())

    async def fail(self, task_id: str, reason: str) -> dict[str, Any]:
        record = await self._dispatcher.fail(task_id, reason or "no reason given")
        return task_summary(record, self._store.now())

    def drain_worker(self, worker_id: str, reason: str) -> dict[str, Any]:
        self._dispatcher.drain_worker(worker_id, reason or "drained by an operator")
        return {"workerId": worker_id, "draining": True}

    async def disconnect_worker(self, worker_id: str, *, requeue: bool = False
                                ) -> dict[str, Any]:
        """Close a remote worker's link (it reconnects by itself unless it was stopped
        or drained); with `requeue` its running tasks are queued again at once instead
        of waiting for their leases to run out."""
        views = {v.worker_id: v for v in self._dispatcher.worker_views()}
        view = views.get(worker_id)
        if view is None:
            raise AdminRefused("worker_not_found",
                               f"worker {worker_id!r} is not connected to this server process")
        if view.in_process:
            raise AdminRefused("conflict", f"worker {worker_id!r} runs inside the server "
                                           "process and has no link to close; drain it")
        closed = self._links.close_worker(worker_id)
        requeued = []
        if requeue:
            for task_id in view.running:
                try:
                    await self._dispatcher.requeue(task_id, f"worker {worker_id!r} "
                                                            "disconnected by an operator")
                except AdminRefused:
                    continue  # ended or moved meanwhile
                requeued.append(task_id)
        log.warning("worker disconnected by an operator", extra={
            "worker_id": worker_id, "connections": closed, "requeued": len(requeued)})
        return {"workerId": worker_id, "closed": closed, "requeued": requeued}

    async def cancel_tasks(self, which: CancelFilter, *, dry_run: bool = False
                           ) -> dict[str, Any]:
        """Cancel every unfinished task `which` matches (at most `which.limit`), through
        the A2A service as its owner would; `dry_run` only says which."""
        matched = [r for r in await self._store.list_unfinished() if which.matches(r)]
        matched.sort(key=lambda r: r.created_at)
        chosen = matched[:which.limit]
        ids = [r.task_id for r in chosen]
        if dry_run:
            return {"matched": len(matched), "taskIds": ids, "canceled": [], "errors": {}}
        canceled: list[str] = []
        errors: dict[str, str] = {}

        async def cancel_one(record: TaskRecord) -> None:
            async with self._cancel_limit:
                try:
                    await self._service.cancel_task(CancelTaskRequest(id=record.task_id),
                                                    record.owner)
                except A2AError as exc:
                    errors[record.task_id] = str(exc)
                else:
                    canceled.append(record.task_id)

        async with trio.open_nursery() as nursery:
            for record in chosen:
                nursery.start_soon(cancel_one, record)
        log.warning("tasks canceled by an operator", extra={
            "matched": len(matched), "canceled": len(canceled), "errors": len(errors)})
        return {"matched": len(matched), "taskIds": ids,
                "canceled": [i for i in ids if i in set(canceled)], "errors": errors}


def states_from(names: Sequence[str]) -> tuple[TaskState, ...]:
    """Task states from their names (`working`, `TASK_STATE_WORKING`); ValueError
    naming the one not known."""
    out = []
    for name in names:
        key = name.strip().upper()
        key = key if key.startswith("TASK_STATE_") else f"TASK_STATE_{key.replace('-', '_')}"
        try:
            out.append(TaskState(key))
        except ValueError:
            known = ", ".join(s.value[11:].lower().replace("_", "-") for s in TaskState
                              if s is not TaskState.UNSPECIFIED)
            raise ValueError(f"unknown task state {name!r}; one of {known}") from None
    return tuple(out)
