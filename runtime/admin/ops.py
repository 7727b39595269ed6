"""The admin operations by name, with their parameters read and checked.

One table for both bindings: the JSON-RPC methods (`trio-a2a/admin/<name>`, params
an object) and the HTTP+JSON routes (path, query and body merged into params) call
the same functions, so they take the same parameters and give the same results.
A bad parameter raises `BadParams` naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors.admin import AdminService, CancelFilter, states_from, task_summary
from protocol.models import dump

__all__ = ["OPERATIONS", "BadParams", "Operation"]

Operation = Callable[[AdminService, dict[str, Any]], Awaitable[dict[str, Any]]]


class BadParams(ValueError):
    """A parameter is missing or of the wrong kind; the message names it."""


def _str(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise BadParams(f"params.{name} is required (a non-empty string)")
        return None
    if not isinstance(value, str):
        raise BadParams(f"params.{name} must be a string, not {value!r}")
    return value


def _number(params: dict[str, Any], name: str, *, integer: bool = False) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise BadParams(f"params.{name} must be {kind}, not {value!r}") from None
    if number < 0 or isinstance(value, bool):
        raise BadParams(f"params.{name} must be a non-negative number, not {value!r}")
    return number


def _bool(params: dict[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise BadParams(f"params.{name} must be true or false, not {value!r}")


def _limit(params: dict[str, Any], default: int) -> int:
    value = _number(params, "limit", integer=True)
    return default if value is None else max(1, int(value))


async def list_workers(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    return {"replica": admin.replica_id, "workers": admin.workers()}


async def list_queue(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    return {"routes": await admin.queue(limit=_limit(params, 100))}


async def list_leases(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    within = _number(params, "expiringWithin")
    return {"tasks": await admin.leases(expiring_within=within,
                                        retried=bool(_bool(params, "retried")))}


async def list_tasks(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": await admin.recent(limit=min(_limit(params, 50), 500))}


async def get_task(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    record = await admin.task(_str(params, "id", required=True) or "")
    return {**task_summary(record, record.status_at), "task": dump(record.task)}


async def requeue_task(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    task_id = _str(params, "id", required=True) or ""
    return await admin.requeue(task_id, _str(params, "reason") or "")


async def fail_task(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    task_id = _str(params, "id", required=True) or ""
    return await admin.fail(task_id, _str(params, "reason") or "")


async def drain_worker(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    worker_id = _str(params, "workerId", required=True) or ""
    return admin.drain_worker(worker_id, _str(params, "reason") or "")


async def disconnect_worker(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    worker_id = _str(params, "workerId", required=True) or ""
    return await admin.disconnect_worker(worker_id, requeue=bool(_bool(params, "requeue")))


async def cancel_tasks(admin: AdminService, params: dict[str, Any]) -> dict[str, Any]:
    states = params.get("states")
    if isinstance(states, str):
        states = [s for s in states.split(",") if s.strip()]
    if states is not None and not (isinstance(states, list)
                                   and all(isinstance(s, str) for s in states)):
        raise BadParams(f"params.states must be a list of task states, not {states!r}")
    try:
        wanted = states_from(states or ())
    except ValueError as exc:
        raise BadParams(f"params.states: {exc}") from None
    which = CancelFilter(
        states=wanted, context_id=_str(params, "contextId"), owner=_str(params, "owner"),
        worker_id=_str(params, "workerId"), agent=_str(params, "agent"),
        capability=_str(params, "capability"), queued=_bool(params, "queued"),
        limit=_limit(params, 1000))
    if which == CancelFilter(limit=which.limit) and not _bool(params, "all"):
        raise BadParams("params: give at least one filter (states, contextId, owner, "
                        "workerId, agent, capability, queued), or all: true to cancel "
                        "every unfinished task")
    return await admin.cancel_tasks(which, dry_run=bool(_bool(params, "dryRun")))


OPERATIONS: dict[str, Operation] = {
    "listWorkers": list_workers,
    "listQueue": list_queue,
    "listLeases": list_leases,
    "listTasks": list_tasks,
    "getTask": get_task,
    "requeueTask": requeue_task,
    "failTask": fail_task,
    "drainWorker": drain_worker,
    "disconnectWorker": disconnect_worker,
    "cancelTasks": cancel_tasks,
}
