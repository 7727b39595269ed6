"""The client side of the hostile-traffic fuzzer (`bench.hostile`): run one case on
a raw trio socket (or through httpx), read what comes back, and judge it.

Why a parser of our own: the requests are broken on purpose, so no HTTP client
library would send them, and the answers must be read without trusting the
server: how many responses came, with which status, whether the connection was
closed, and whether it went silent. A connection that neither answers what it was
sent nor closes within the deadline is *stuck*; an HTTP 5xx, or a JSON-RPC
internal error (-32603) in a body or an SSE frame, is a *server error*. An SSE
response counts as answered once its head is in (the stream is read for the
case's linger, then closed: that is the "subscribe closed early" traffic).
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import trio

from bench.hostile_cases import Case
from bench.hostile_requests import SOFT_WAIT

HOST = "127.0.0.1"
PORT_LOG = os.environ.get("HOSTILE_PORT_LOG", "")
"""Debug: a file to append 'case-index kind client-port' lines to (trace a
CLOSE-WAIT socket's client port back to its case)."""


def log_port(case: Case, port: int | None) -> None:
    if PORT_LOG and port:
        with open(PORT_LOG, "a") as f:
            f.write(f"{case.index} {case.kind} {port}\n")
BODY_CAP = 1 << 20
_INTERNAL = re.compile(rb'"code"\s*:\s*-32603\b')


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    sse: bool = False


class ResponseParser:
    """Incremental HTTP/1.1 response parser for one connection (sans-IO)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.methods: deque[str] = deque()
        self.responses: list[Response] = []
        self.eof = False
        self.sse = False
        self.garbled = ""
        self._cur: Response | None = None
        self._left: int | None = None  # body bytes left; None: until EOF
        self._chunked = False

    @property
    def done(self) -> bool:
        return self.eof or self.sse or bool(self.garbled)

    def expect(self, methods: tuple[str, ...]) -> None:
        self.methods.extend(methods)

    def feed(self, data: bytes) -> None:
        if self.sse and self.responses:
            body = self.responses[-1].body
            self.responses[-1].body = (body + data)[:BODY_CAP]
            return
        self.buf += data
        while not self.done and self._step():
            pass

    def close(self) -> None:
        if self._cur is not None and self._left is None and not self._chunked:
            self._finish()  # a body delimited by the close
        self.eof = True

    def _step(self) -> bool:
        if self._cur is None:
            if len(self.buf) >= 5 and not self.buf.startswith(b"HTTP/"):
                # an answer, though not HTTP/1 (HTTP/2 SETTINGS after a PRI preface)
                self.garbled = f"not an HTTP/1 answer: {bytes(self.buf[:16])!r}"
                return False
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.garbled = "response head over 64 KiB"
                return False
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            parts = head[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                self.garbled = f"bad status line {head[0][:60]!r}"
                return False
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                return True  # interim (100 Continue)
            method = self.methods.popleft() if self.methods else "GET"
            self._cur = Response(status, headers)
            self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            if headers.get("content-type", "").startswith("text/event-stream"):
                self._cur.sse = True
                self._finish()
                self.sse = True
                rest = bytes(self.buf)
                self.buf.clear()
                self.feed(rest)
                return False
            if method == "HEAD" or status in (101, 204, 304):
                self._left = 0
            elif self._chunked:
                self._left = -1
            elif "content-length" in headers and headers["content-length"].isdigit():
                self._left = int(headers["content-length"])
            else:
                self._left = None
            if self._left == 0:
                self._finish()
            return True
        if self._chunked:
            return self._chunk()
        take = len(self.buf) if self._left is None else min(self._left, len(self.buf))
        if take:
            self._add(bytes(self.buf[:take]))
            del self.buf[:take]
        if self._left is not None:
            self._left -= take
            if self._left == 0:
                self._finish()
                return True
        return False

    def _chunk(self) -> bool:
        line_end = self.buf.find(b"\r\n")
        if line_end < 0:
            return False
        size_text = bytes(self.buf[:line_end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            self.garbled = f"bad chunk size {size_text[:20]!r}"
            return False
        if size == 0:  # last chunk, then trailers up to a blank line
            end = self.buf.find(b"\r\n\r\n", line_end)
            if end < 0:
                return False
            del self.buf[:end + 4]
            self._finish()
            return True
        if len(self.buf) < line_end + 2 + size + 2:
            return False
        self._add(bytes(self.buf[line_end + 2:line_end + 2 + size]))
        del self.buf[:line_end + 2 + size + 2]
        return True

    def _add(self, data: bytes) -> None:
        assert self._cur is not None
        if len(self._cur.body) < BODY_CAP:
            self._cur.body += data[:BODY_CAP - len(self._cur.body)]

    def _finish(self) -> None:
        assert self._cur is not None
        self.responses.append(self._cur)
        self._cur = None
        self._chunked = False


def server_error(resp: Response) -> str | None:
    """'HTTP 5xx' or 'JSON-RPC -32603' when the answer is a server error, else None."""
    if resp.status >= 500:
        return f"HTTP {resp.status}"
    if resp.sse:
        return "JSON-RPC -32603 in SSE" if _INTERNAL.search(resp.body) else None
    if b"-32603" not in resp.body:
        return None
    try:
        doc = json.loads(resp.body)
    except ValueError:
        return None
    for item in doc if isinstance(doc, list) else [doc]:
        if isinstance(item, dict) and isinstance(item.get("error"), dict) \
                and item["error"].get("code") == -32603:
            return "JSON-RPC -32603"
    return None


@dataclass
class Outcome:
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Server errors, with the status of the response."""
    stuck: str = ""
    refused: str = ""
    """No connection, and why: ECONNREFUSED (the listener is not there: crashed,
    restarting, gone) or EADDRNOTAVAIL (no local port left for a new connection)."""
    closed: bool = False
    """The server closed (or reset) before every awaited answer came."""
    note: str = ""
    seconds: float = 0.0


def _judge(out: Outcome, responses: list[Response], case: Case) -> None:
    for resp in responses:
        out.statuses.append(resp.status)
        err = None if resp.status in case.allowed_5xx else server_error(resp)
        if err:
            out.errors.append(f"{err}: {resp.body[:300]!r}")


async def run_raw(case: Case, port: int, deadline: float) -> Outcome:
    """Run a raw-socket case; every wait bounded by `deadline` seconds."""
    out = Outcome()
    t0 = time.monotonic()
    try:
        stream = await trio.open_tcp_stream(HOST, port)
    except OSError as exc:
        out.refused = connect_errno(exc)
        await trio.sleep(0.05)  # not a hot loop while the listener is down
        return out
    log_port(case, stream.socket.getsockname()[1])
    parser = ResponseParser()
    changed = [trio.Event()]

    def poke() -> None:
        changed[0].set()
        changed[0] = trio.Event()

    async def pump() -> None:
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                parser.feed(data)
                poke()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        parser.close()
        poke()

    async def wait_answers(want: int, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            while not (parser.done or len(parser.responses) >= want):
                await changed[0].wait()
            return True
        return False

    reset = False
    awaited = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        for n, step in enumerate(case.steps, 1):
            if parser.done:
                break
            if step.pause:
                await trio.sleep(step.pause)
            parser.expect(step.methods)
            awaited += len(step.methods)
            pieces = _split(step.data, 4) if step.drip else [step.data]
            written = True
            with trio.move_on_after(deadline) as write_scope:
                try:
                    for i, piece in enumerate(pieces):
                        if i and step.drip:
                            await trio.sleep(step.drip)
                        await stream.send_all(piece)
                    if step.then == "shut":
                        await stream.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    written = False
            if write_scope.cancelled_caught and not parser.done and \
                    len(parser.responses) < awaited:
                out.stuck = f"step {n}: request not read and not answered in {deadline:g} s"
                break
            if not written:
                out.note = f"step {n}: write failed (server closed)"
            if step.wait == "all" and step.methods:
                if not await wait_answers(awaited, deadline):
                    shut = " after a half-close" if step.then == "shut" else ""
                    out.stuck = (f"step {n}: {len(parser.responses)} of {awaited} answers "
                                 f"and no close within {deadline:g} s{shut}")
                    break
            elif step.wait == "soft":
                await wait_answers(awaited, SOFT_WAIT)
            if step.then in ("close", "reset"):
                reset = step.then == "reset"
                break
        if parser.sse and case.linger:
            await trio.sleep(case.linger)
        nursery.cancel_scope.cancel()
    if parser.garbled:
        out.note = f"unreadable answer: {parser.garbled}"
    out.closed = parser.eof and len(parser.responses) < awaited
    _judge(out, parser.responses, case)
    await _close(stream, reset)
    out.seconds = time.monotonic() - t0
    return out


def connect_errno(exc: BaseException) -> str:
    """The errno name behind a failed connect (trio and httpx wrap it)."""
    seen: list[BaseException] = [exc]
    while seen:
        e = seen.pop()
        if isinstance(e, OSError) and e.errno:
            return errno.errorcode.get(e.errno, str(e.errno))
        seen += [c for c in (e.__cause__, e.__context__) if c is not None]
        seen += list(getattr(e, "exceptions", ()))
    return "connect failed"


def _split(data: bytes, n: int) -> list[bytes]:
    size = max(1, -(-len(data) // n))
    return [data[i:i + size] for i in range(0, len(data), size)]


async def _close(stream: trio.SocketStream, reset: bool) -> None:
    if reset:
        try:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
        except OSError:
            pass
    await stream.aclose()


async def run_httpx(client: httpx.AsyncClient, case: Case, port: int,
                    deadline: float) -> Outcome:
    """Send a case's request through httpx (a pooled keep-alive client)."""
    req = case.http
    assert req is not None
    out = Outcome()
    t0 = time.monotonic()
    url = httpx.URL(f"http://{HOST}:{port}").copy_with(raw_path=req.path.encode())
    try:
        with trio.fail_after(deadline):
            async with client.stream(req.method, url, headers=req.headers,
                                     content=req.body or None) as r:
                resp = Response(r.status_code, dict(r.headers))
                if PORT_LOG:
                    ns = r.extensions.get("network_stream")
                    addr = ns.get_extra_info("client_addr") if ns is not None else None
                    log_port(case, addr[1] if addr else None)
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    resp.sse = True
                    with trio.move_on_after(case.linger or 0.05):
                        async for chunk in r.aiter_bytes():
                            resp.body = (resp.body + chunk)[:BODY_CAP]
                else:
                    resp.body = (await r.aread())[:BODY_CAP]
        _judge(out, [resp], case)
    except (trio.TooSlowError, httpx.TimeoutException):
        out.stuck = (f"no answer within {deadline:g} s (httpx, on a pooled keep-alive "
                     "connection an earlier request may have left wedged)")
    except httpx.ConnectError as exc:
        out.refused = connect_errno(exc)
        await trio.sleep(0.05)
    except httpx.HTTPError as exc:
        out.closed = True
        out.note = f"httpx: {exc.__class__.__name__}: {exc}"
    out.seconds = time.monotonic() - t0
    return out


async def stalled_head(port: int, hold: float, dribble: bool) -> str:
    """Send an incomplete request head and stop (or add a header line every second).
    'closed after N s' if the server closed it (or answered) within `hold` seconds,
    else what it kept open."""
    stream = await trio.open_tcp_stream(HOST, port)
    t0 = time.monotonic()
    closed_at: list[float] = []

    async def watch(done: trio.CancelScope) -> None:
        try:
            await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        closed_at.append(time.monotonic() - t0)
        done.cancel()  # the probe ends when the server closes it

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            with trio.move_on_after(hold):
                await stream.send_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                n = 0
                while dribble and not closed_at:
                    await trio.sleep(1.0)
                    n += 1
                    await stream.send_all(f"X-Slow-{n}: {n}\r\n".encode())
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        closed_at.append(time.monotonic() - t0)
    finally:
        await stream.aclose()
    if closed_at:
        return f"closed after {closed_at[0]:.1f} s"
    how = "a header line every second" if dribble else "nothing more"
    return f"incomplete request head (then {how}) still open after {hold:g} s"
