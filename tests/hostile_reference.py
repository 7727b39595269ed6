"""A small, well-behaved ASGI app for checking the hostile-traffic harness itself.

Run under uvicorn, it answers every request promptly: 413 for a declared body
over the limit without reading it, 404 at once (body unread) on some paths, an
SSE stream that stays open on paths naming a stream or a subscription, JSON
otherwise. A correct harness reports no stuck connection, no server error and
no CLOSE-WAIT against it (tests/test_hostile_harness.py).
"""

from __future__ import annotations

import json
from typing import Any

LIMIT = 256 * 1024


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    path = scope["path"]
    declared = dict(scope["headers"]).get(b"content-length", b"")
    if declared.isdigit() and int(declared) > LIMIT:
        await _answer(send, 413, b'{"error":"too large"}')
        return
    if path.startswith(("/nope", "/.well-known")):
        await _answer(send, 404, b"{}")  # answered before the body is read
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if size > LIMIT:
            await _answer(send, 413, b"{}")
            return
        if not message.get("more_body"):
            break
    if "subscribe" in path or "stream" in path:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    await _answer(send, 200 if path == "/" else 404, json.dumps({"size": size}).encode())


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
