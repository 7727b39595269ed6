"""Calling the admin API the same way over both bindings, for the admin tests."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import httpx

from runtime.admin.routes import ADMIN_ROUTES

TOKEN = "admin-s3cret-token"
_ROUTES = {name: (method, path) for method, path, name in ADMIN_ROUTES}


class AdminError(Exception):
    def __init__(self, status: int, code: int | str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@attrs.define
class Admin:
    """One admin operation by name, over "rest" (HTTP+JSON) or "rpc" (JSON-RPC)."""

    client: httpx.AsyncClient
    binding: str
    token: str | None = TOKEN

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def __call__(self, op: str, **params: Any) -> dict[str, Any]:
        if self.binding == "rpc":
            body = {"jsonrpc": "2.0", "id": 1, "method": f"trio-a2a/admin/{op}",
                    "params": params}
            r = await self.client.post("/", content=json.dumps(body),
                                       headers={**self._headers(),
                                                "Content-Type": "application/json"})
            out = r.json()
            if "error" in out:
                raise AdminError(r.status_code, out["error"]["code"], out["error"]["message"])
            assert r.status_code == 200
            return out["result"]
        method, path = _ROUTES[op]
        for name in re.findall(r"<(\w+)>", path):
            path = path.replace(f"<{name}>", str(params.pop(name)))
        if method == "GET":
            r = await self.client.get(path, params={k: str(v).lower() if isinstance(v, bool)
                                                    else v for k, v in params.items()},
                                      headers=self._headers())
        else:
            r = await self.client.post(path, json=params, headers=self._headers())
        if r.status_code != 200:
            err = r.json()["error"]
            raise AdminError(r.status_code, err["status"], err["message"])
        return r.json()
