"""A real server process out of file descriptors (RLIMIT_NOFILE lowered to 64):
its accept loop backs off and logs one warning per interval, never a traceback;
`statistics()` says so while it lasts; once clients close their connections it
serves again. The server runs in `tests/http_face/fd_limit_script.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from tests.http_face.wire import read_answer, request_head

REPO = Path(__file__).resolve().parents[2]
NOFILE = 64
LOG_INTERVAL = 0.5
HOLD = 2.0
"""Seconds the server is kept out of descriptors: four log intervals."""
CARD = "/.well-known/agent-card.json"


@attrs.define(eq=False)
class Lines:
    """The lines of a child's pipe, as they come."""

    lines: list[str] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def pump(self, stream: trio.abc.ReceiveStream) -> None:
        buf = b""
        async for chunk in stream:
            buf += chunk
            *done, buf = buf.split(b"\n")
            self.lines += [line.decode(errors="replace") for line in done]
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, found: Callable[[str], bool]) -> str:
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if found(line):
                    return line
            seen = len(self.lines)
            await self._changed.wait()


async def get_card(port: int) -> int:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request_head("GET", CARD))
        return (await read_answer(stream)).status


async def test_out_of_file_descriptors_logs_once_per_interval_and_recovers() -> None:
    out, err = Lines(), Lines()
    cmd = [sys.executable, "-m", "tests.http_face.fd_limit_script", str(NOFILE),
           str(LOG_INTERVAL)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(
                cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert process.stdout is not None and process.stderr is not None
            nursery.start_soon(out.pump, process.stdout)
            nursery.start_soon(err.pump, process.stderr)
            try:
                port = int((await out.wait_for(lambda s: s.startswith("port "))).split()[1])
                clients: list[trio.SocketStream] = []
                # Twice the limit: the server runs out of descriptors on the way (the
                # rest wait in its backlog; connecting still works).
                for _ in range(2 * NOFILE):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    await stream.send_all(request_head("GET", CARD))
                    clients.append(stream)
                await out.wait_for(lambda s: s == "fd_exhausted True")
                await trio.sleep(HOLD)
                for stream in clients:
                    await stream.aclose()
                await out.wait_for(lambda s: s == "fd_exhausted False")
                assert await get_card(port) == 200  # serving again
            finally:
                process.terminate()
                await process.wait()
    text = "\n".join(err.lines)
    assert "Traceback" not in text, text
    records = [json.loads(line) for line in err.lines if line.startswith("{")]
    mine: list[dict[str, Any]] = [r for r in records if r["logger"] == "runtime.http.listener"]
    warnings = [r for r in mine if r["level"] == "warning"]
    assert all(r["errno"] == "EMFILE" for r in mine), mine
    recovered = [r for r in mine if r["level"] == "info"]
    assert [r["msg"].split(" after ")[0] for r in recovered] == ["accepting connections again"]
    lasted = recovered[0]["seconds"]
    assert lasted >= HOLD
    # One at the start and at most one per interval while it lasted, not one per attempt.
    assert 1 <= len(warnings) <= lasted / LOG_INTERVAL + 1, warnings
    assert not [r for r in records if "exc" in r or r["level"] == "error"], records
