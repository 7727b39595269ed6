"""The admin API over HTTP+JSON (``/admin/v1/...``) and the dashboard's streams.

Every route checks the caller first (the admin token or an identity with `admin`,
`runtime.admin.gate`), then merges the path, query and JSON body into the operation's
params (`runtime.admin.ops`).
Errors are google.rpc.Status bodies as on the A2A binding: 400 INVALID_ARGUMENT
for a bad parameter, 404 NOT_FOUND for an unknown task or a worker not connected
here, 409 FAILED_PRECONDITION when the task's state does not allow the change.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from actors.admin import AdminRefused, AdminService
from runtime.admin.feed import Throughput, snapshots, task_events
from runtime.admin.gate import AdminGate, Refusal
from runtime.admin.ops import OPERATIONS, BadParams
from runtime.http.common import json_response
from runtime.http.signing_settings import SIGNED_BY
from runtime.http.sse import sse_response

__all__ = ["ADMIN_ROUTES", "register_admin_routes"]

log = logging.getLogger(__name__)

ADMIN_ROUTES = (
    ("GET", "/admin/v1/workers", "listWorkers"),
    ("POST", "/admin/v1/workers/<workerId>:drain", "drainWorker"),
    ("POST", "/admin/v1/workers/<workerId>:disconnect", "disconnectWorker"),
    ("GET", "/admin/v1/queue", "listQueue"),
    ("GET", "/admin/v1/leases", "listLeases"),
    ("GET", "/admin/v1/tasks", "listTasks"),
    ("POST", "/admin/v1/tasks:cancel", "cancelTasks"),
    ("GET", "/admin/v1/tasks/<id>", "getTask"),
    ("POST", "/admin/v1/tasks/<id>:requeue", "requeueTask"),
    ("POST", "/admin/v1/tasks/<id>:fail", "failTask"),
)

_STATUS = {"task_not_found": (404, "NOT_FOUND"), "worker_not_found": (404, "NOT_FOUND"),
           "conflict": (409, "FAILED_PRECONDITION")}


def _error(status: int, reason: str, message: str) -> Response:
    return json_response({"error": {"code": status, "status": reason, "message": message}},
                         status=status, headers={"Cache-Control": "no-store"})


def _refused(refusal: Refusal) -> Response:
    return json_response(refusal.body(), status=refusal.status,
                         headers={**refusal.headers, "Cache-Control": "no-store"})


def register_admin_routes(app: QuartTrio, admin: AdminService, gate: AdminGate, *,
                          throughput: Throughput, interval: float = 1.0) -> None:
    """Add the admin routes and the dashboard's two SSE streams to `app`."""

    async def refused() -> Response | None:
        refusal = await gate.refuse(request.headers.getlist("Authorization"),
                                    request.scope.get(SIGNED_BY))
        return None if refusal is None else _refused(refusal)

    def view_of(name: str) -> Any:
        op = OPERATIONS[name]

        async def view(**path: str) -> Response:
            if (no := await refused()) is not None:
                return no
            params: dict[str, Any] = dict(request.args)
            if request.method == "POST":
                body = await request.get_json(force=True, silent=True)
                if body is not None and not isinstance(body, dict):
                    return _error(400, "INVALID_ARGUMENT", "the body must be a JSON object")
                params.update(body or {})
            params.update(path)
            try:
                result = await op(admin, params)
            except BadParams as exc:
                return _error(400, "INVALID_ARGUMENT", str(exc))
            except AdminRefused as exc:
                return _error(*_STATUS.get(exc.code, (500, "INTERNAL")), exc.message)
            log.info("admin call", extra={"operation": name, "path": request.path})
            return json_response(result, headers={"Cache-Control": "no-store"})

        return view

    for method, path, name in ADMIN_ROUTES:
        app.add_url_rule(path, f"admin_{name}", view_of(name), methods=[method])

    async def stream() -> Response:
        if (no := await refused()) is not None:
            return no
        return sse_response(snapshots(admin, throughput, interval=interval))

    async def events(id: str) -> Response:
        if (no := await refused()) is not None:
            return no
        try:
            after = int(request.args.get("after", "0"))
            await admin.task(id)
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "after must be an event sequence number")
        except AdminRefused as exc:
            return _error(404, "NOT_FOUND", exc.message)
        return sse_response(task_events(admin, id, after=after))

    app.add_url_rule("/admin/v1/stream", "admin_stream", stream, methods=["GET"])
    app.add_url_rule("/admin/v1/tasks/<id>/events", "admin_task_events", events,
                     methods=["GET"])
