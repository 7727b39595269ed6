"""The admin API over JSON-RPC: methods `trio-a2a/admin/<operation>` on ``POST /``.

The JSON-RPC endpoint hands a request to `AdminRpc` before its own client auth
(`AppState.extension_rpc`): admin calls are judged by the admin token instead,
whatever the A2A-Version header says. A batch is not taken apart for them (its
admin calls get -32601 from the A2A methods' table): send admin calls one by one.

Errors: -32602 for a bad parameter (naming it), -32001 for a task not found and
-32044 for a worker not connected here, -32049 when the task's state does not allow
the change, -32040 (HTTP 401) without the admin token, -32041 (HTTP 403) with
another token, -32042 (HTTP 200, as on the A2A methods) over the rate limit, -32601
when the admin API is off.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from actors.admin import AdminRefused, AdminService
from runtime.admin.gate import AdminGate
from runtime.admin.ops import OPERATIONS, BadParams

__all__ = ["ADMIN_PREFIX", "AdminRpc"]

log = logging.getLogger(__name__)

ADMIN_PREFIX = "trio-a2a/admin/"
_MARK = ADMIN_PREFIX.encode()
_CODES = {"task_not_found": -32001, "worker_not_found": -32044, "conflict": -32049}


def _error(req_id: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "error": error},
                      separators=(",", ":")).encode()


class AdminRpc:
    """Answers the admin methods; `__call__` returns None for anything else."""

    def __init__(self, admin: AdminService, gate: AdminGate) -> None:
        self._admin = admin
        self._gate = gate

    async def __call__(self, authorizations: list[str], body: bytes,
                       signed_by: str | None = None) -> tuple[int, bytes] | None:
        if _MARK not in body:
            return None  # the common case costs one search of the body
        try:
            payload = json.loads(body)
        except ValueError:
            return None  # the endpoint answers the parse error
        if not isinstance(payload, dict):
            return None
        method = payload.get("method")
        if not isinstance(method, str) or not method.startswith(ADMIN_PREFIX):
            return None
        req_id = payload.get("id")
        refusal = await self._gate.refuse(authorizations, signed_by)
        if refusal is not None:  # over the rate limit: 200, as the A2A methods answer
            return refusal.status if refusal.status not in (404, 429) else 200, _error(
                req_id, refusal.rpc_code, refusal.message, refusal.rpc_data)
        name = method[len(ADMIN_PREFIX):]
        op = OPERATIONS.get(name)
        if op is None:
            return 200, _error(req_id, -32601, f"method {method!r} not found; admin methods: "
                                               + ", ".join(sorted(OPERATIONS)))
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            return 200, _error(req_id, -32602, "params must be an object")
        try:
            result = await op(self._admin, params)
        except BadParams as exc:
            return 200, _error(req_id, -32602, str(exc))
        except AdminRefused as exc:
            return 200, _error(req_id, _CODES.get(exc.code, -32603), exc.message)
        except Exception:
            log.exception("admin method failed", extra={"method": method})
            return 200, _error(req_id, -32603, "internal server error")
        log.info("admin call", extra={"method": method})
        return 200, json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result},
                               separators=(",", ":")).encode()
