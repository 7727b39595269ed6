"""The hostile-traffic harness (bench/hostile*.py) checked on its own, so that what
it reports about the server can be trusted: its response parser, what it counts
as a server error, that a case is rebuilt exactly from its seed and index, that
no case reaches past loopback, and that against a well-behaved server it finds
nothing wrong.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from bench.hostile_cases import KINDS, Case, make_case
from bench.hostile_payloads import Pool
from bench.hostile_requests import Target
from bench.hostile_run import HostileOptions, Tally, run_cases
from bench.hostile_wire import Response, ResponseParser, server_error
from bench.procs import close_wait, free_port

TARGET = Target(8, "tok", "owner-tok", "worker-tok", Pool(("d1", "d2"), ("q1",), ("h1",), 4096))


def parse(data: bytes, methods: tuple[str, ...], eof: bool = False) -> ResponseParser:
    p = ResponseParser()
    p.expect(methods)
    for i in range(0, len(data), 7):  # in small pieces, as a socket may deliver them
        p.feed(data[i:i + 7])
    if eof:
        p.close()
    return p


def test_parser_reads_pipelined_responses_of_every_framing() -> None:
    wire = (b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # HEAD: no body
            b"HTTP/1.1 204 No Content\r\n\r\n"
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n"
            b"HTTP/1.0 400 Bad\r\n\r\nuntil the end")
    p = parse(wire, ("POST", "HEAD", "GET", "GET", "GET", "GET"), eof=True)
    assert [r.status for r in p.responses] == [200, 200, 204, 304, 404, 400]
    assert [r.body for r in p.responses] == [b"{}", b"", b"", b"", b"abc0123456789",
                                             b"until the end"]
    assert p.eof and not p.garbled


def test_parser_stops_at_an_sse_head_and_keeps_its_frames() -> None:
    wire = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n10\r\ndata: {\"a\": 1}\n\n\r\n")
    p = parse(wire, ("POST", "GET"))
    assert p.done and p.sse and len(p.responses) == 1
    assert b'data: {"a": 1}' in p.responses[0].body


def test_parser_waits_for_incomplete_answers_and_flags_garbage() -> None:
    p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", ("GET",))
    assert p.responses == [] and not p.done
    assert parse(b"SSH-2.0-x\r\n\r\n", ("GET",)).garbled
    assert parse(b"\x00\x00*\x04\x00\x00\x00\x00\x00", ("GET",)).done  # HTTP/2 SETTINGS


@pytest.mark.parametrize(("status", "body", "sse", "expected"), [
    (500, b"", False, "HTTP 500"),
    (200, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x"}}', False,
     "JSON-RPC -32603"),
    (200, b'[{"id":1,"result":{}},{"id":2,"error":{"code":-32603}}]', False,
     "JSON-RPC -32603"),
    (200, b'data: {"error": {"code": -32603}}\n\n', True, "JSON-RPC -32603 in SSE"),
    (200, b'{"result":{"text":"\\"code\\":-32603"}}', False, None),  # only quoted
    (200, b'{"error":{"code":-32602}}', False, None),
    (404, b"", False, None),
])
def test_what_counts_as_a_server_error(status: int, body: bytes, sse: bool,
                                       expected: str | None) -> None:
    assert server_error(Response(status, {}, body, sse)) == expected


def _wire(case: Case) -> bytes:
    if case.http is not None:
        return repr((case.http.method, case.http.path, case.http.headers)).encode() \
            + case.http.body
    return b"|".join(s.data + repr((s.methods, s.wait, s.drip, s.then)).encode()
                     for s in case.steps)


def test_a_case_is_rebuilt_exactly_from_seed_and_index() -> None:
    for index in range(300):
        assert _wire(make_case(5, index, TARGET)) == _wire(make_case(5, index, TARGET))
    assert _wire(make_case(5, 1, TARGET)) != _wire(make_case(6, 1, TARGET))


def test_every_kind_is_built_and_none_reaches_past_loopback() -> None:
    seen: Counter[str] = Counter()
    url = re.compile(rb"(?:https?|ftp)://\[?([A-Za-z0-9.:-]*)")
    for index in range(3000):
        case = make_case(11, index, TARGET)
        seen[case.kind] += 1
        for host in url.findall(_wire(case)):
            # loopback, private and documentation addresses the server refuses, and
            # names it resolves from /etc/hosts; never a public address or domain
            assert host.startswith((b"127.", b"10.", b"192.0.2.", b"::", b"localhost",
                                    b"evil.invalid")), host
    assert set(seen) == {kind for kind, _ in KINDS}


def test_harness_finds_nothing_wrong_with_a_well_behaved_server() -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    here = Path(__file__).resolve().parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(here), "hostile_reference:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "critical"],
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert time.monotonic() < deadline and proc.poll() is None, "uvicorn did not start"
            time.sleep(0.05)
        target = replace(TARGET, port=port, pool=replace(TARGET.pool, max_body=256 * 1024))
        tally = Tally()
        opts = HostileOptions(requests=800, seed=3, head_probes=0, progress=False,
                              max_seconds=40)
        trio.run(run_cases, opts, target, tally)
        left = close_wait(port)
        for _ in range(40):
            if not left:
                break
            time.sleep(0.25)
            left = close_wait(port)
    finally:
        proc.terminate()
        proc.wait(10)
    assert tally.requests >= 800 and not tally.refused
    assert tally.errors == {} and tally.stuck == {}
    assert left == 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
