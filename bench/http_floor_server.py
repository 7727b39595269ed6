"""The HTTP floor under trio-a2a: quart-trio on hypercorn's trio worker, configured
as `python -m runtime server` configures them, answering every POST / with a canned
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
from quart import Response, request  # noqa: E402
from quart_trio import QuartTrio  # noqa: E402

from runtime.server import _hypercorn_config, _listen  # noqa: E402

RESULT = json.dumps({
    "task": {
        "id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
        "artifacts": [{"artifactId": "a", "parts": [{"text": "hello world"}]}],
    }
}).encode()


def make_app() -> QuartTrio:
    app = QuartTrio("floor")

    @app.post("/")
    async def rpc() -> Response:
        body = json.loads(await request.get_data(cache=False))
        out = b'{"jsonrpc":"2.0","id":' + json.dumps(body["id"]).encode() + b',"result":'
        return Response(out + RESULT + b"}", content_type="application/json")

    @app.get("/.well-known/agent-card.json")
    async def card() -> Response:
        return Response(b"{}", content_type="application/json")

    return app


async def main(host: str, port: int) -> None:
    from hypercorn.config import Sockets
    from hypercorn.trio.run import worker_serve
    from hypercorn.utils import wrap_app

    hc = _hypercorn_config()
    sock = _listen(host, port)
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    await worker_serve(wrap_app(make_app(), hc.wsgi_max_body_size, None), hc, sockets=sockets)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    trio.run(main, args.host, args.port)
