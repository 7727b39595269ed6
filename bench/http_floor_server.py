"""The HTTP floor under trio-a2a's JSON-RPC endpoint: hypercorn's trio worker, run
and configured exactly as `python -m runtime server` runs it (`serve_asgi`), with a
plain ASGI handler that reads the body, parses the JSON-RPC envelope and answers a canned
completed SendMessage result. No A2A work at all: the gap between this target and
trio-memory is what our own code costs per request.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

from runtime.http.serve import serve_asgi  # noqa: E402
from runtime.server import ServerConfig, _listen  # noqa: E402

RESULT = json.dumps({
    "task": {
        "id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
        "artifacts": [{"artifactId": "a", "parts": [{"text": "hello world"}]}],
    }
}).encode()


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        out = b"{}"
    else:
        req_id = json.loads(body)["id"]
        out = b'{"jsonrpc":"2.0","id":' + json.dumps(req_id).encode() + b',"result":' + RESULT
        out += b"}"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


async def main(host: str, port: int) -> None:
    await serve_asgi(app, _listen(host, port), header_timeout=ServerConfig().header_timeout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    trio.run(main, args.host, args.port)
