"""Trivial HTTP/1.1 responder used to measure the load generator's ceiling.

It answers every POST with a canned, valid A2A 1.0 ``SendMessage`` result (a
completed task echoing "hello world", echoing the request's JSON-RPC id) and
every GET with a tiny agent card. There is no JSON parsing and no framework: a
bare asyncio ``Protocol``, so the figure it yields (target ``loadgen-ceiling``)
is what the load generator can push on this machine, not a server's speed.

    python bench/trivial_server.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import re

_ID = re.compile(rb'"id"\s*:\s*(\d+)')
_CARD = b'{"name":"trivial","version":"0","supportedInterfaces":[]}'
_RESULT = (
    b'{"jsonrpc":"2.0","id":%s,"result":{"task":{"id":"t1","contextId":"c1",'
    b'"status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"artifactId":"a1",'
    b'"parts":[{"text":"hello world"}]}]}}}'
)


def _response(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


class Responder(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            i = head.find(b"\r\ncontent-length:")
            n = 0
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                n = int(head[i + 17 : j if j >= 0 else None])
            if len(self.buf) < end + 4 + n:
                break
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            if head.startswith(b"get"):
                out.append(_response(_CARD))
            else:
                m = _ID.search(body)
                out.append(_response(_RESULT % (m.group(1) if m else b"null")))
        if out:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description="trivial canned A2A responder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
