"""A client that speaks A2A 0.1/0.2 as the gateways do, for the tests.

Bodies are built as the gateways build them: a JSON-RPC 2.0 request with a string
id (a UUID), method ``tasks/send`` and friends, params ``{id, message: {role,
parts}, sessionId?, pushNotification?, metadata?}`` with members left out rather
than null (serde's ``skip_serializing_if``), parts tagged with ``type``. The
Abathur gateway posts them to ``/tasks/send``, ``/tasks/sendStream``,
``/tasks/get`` and ``/tasks/cancel``; the 0.1 sample clients post them to the
agent's URL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
import httpx

from protocol.sse import SSEDecoder


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def task_send(task_id: str, *parts: dict[str, Any], session_id: str | None = None,
              **extra: Any) -> dict[str, Any]:
    """TaskSendRequest params, optional members skipped when unset."""
    params: dict[str, Any] = {"id": task_id, "message": {"role": "user", "parts": list(parts)}}
    if session_id is not None:
        params["sessionId"] = session_id
    params.update(extra)
    return params


@attrs.define
class LegacyClient:
    client: httpx.AsyncClient
    headers: dict[str, str] = attrs.field(factory=dict)

    def _body(self, method: str, params: Any) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                           "id": str(uuid.uuid4())}).encode()

    async def raw(self, method: str, params: Any, path: str = "/") -> dict[str, Any]:
        r = await self.client.post(path, content=self._body(method, params),
                                   headers={"Content-Type": "application/json", **self.headers})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json"), r.headers
        return r.json()

    async def call(self, method: str, params: Any, path: str = "/") -> Any:
        out = await self.raw(method, params, path)
        assert "error" not in out, out
        return out["result"]

    async def error(self, method: str, params: Any, path: str = "/") -> dict[str, Any]:
        out = await self.raw(method, params, path)
        assert "result" not in out, out
        return out["error"]

    async def stream(self, method: str, params: Any, path: str = "/") -> list[dict[str, Any]]:
        """Every SSE data payload of a streaming call, parsed."""
        payloads: list[dict[str, Any]] = []
        async with self.client.stream(
            "POST", path, content=self._body(method, params),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream",
                     **self.headers},
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            dec = SSEDecoder()
            async for chunk in r.aiter_bytes():
                payloads.extend(json.loads(ev.data) for ev in dec.feed(chunk))
        return payloads
