"""Raw HTTP/1.1 over real loopback sockets, for the connection-handling tests.

httpx hides what these tests look at: how much of a body the server reads, whether
it answers a second request on the same connection, whether it closes its end.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

__all__ = ["Answer", "close_wait_count", "read_answer", "request_head", "wait_closed"]

CLOSE_WAIT = "08"  # the state column of /proc/net/tcp


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request_head(method: str, path: str, **headers: str | int) -> bytes:
    """A request head; `Content_Length=5` becomes ``Content-Length: 5``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_answer(stream: trio.SocketStream, buffer: bytearray | None = None) -> Answer:
    """One response with a Content-Length; bytes after it stay in `buffer`."""
    data = buffer if buffer is not None else bytearray()
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"the server closed the connection mid-response: {bytes(data)!r}"
        data += chunk
    head, _, _ = bytes(data).partition(b"\r\n\r\n")
    del data[:len(head) + 4]
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(data) < length:
        chunk = await stream.receive_some(65536)
        assert chunk, "the server closed the connection mid-body"
        data += chunk
    body = bytes(data[:length])
    del data[:length]
    return Answer(int(status_line.split()[1]), headers, body)


async def wait_closed(stream: trio.SocketStream) -> bytes:
    """Read until the server closes its end (EOF or reset); what came before it."""
    seen = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset: the server closed with data unread
            return bytes(seen)
        if not chunk:
            return bytes(seen)
        seen += chunk


def close_wait_count(port: int) -> int:
    """Sockets on local `port` in CLOSE-WAIT: the peer closed, this side did not."""
    count = 0
    for name in ("tcp", "tcp6"):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == CLOSE_WAIT:
                count += 1
    return count
