"""Child processes for the end-to-end tests: started, their output collected, killed.

`open_processes()` yields `start(name, args)`, which runs `python *args` in the
repository with unbuffered output; every process is killed on the way out and,
if the test failed, what each one said last is logged. `Proc.wait_for` waits
for something to appear in a process's output, bounded, naming what it waited
for when it does not come.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
WAIT_LIMIT = 30
"""Seconds for any one step (a process starting, the client's report), so that a
step that never happens fails with its name and the process's last words."""


@attrs.define(eq=False)
class Proc:
    """A child process whose stderr (and stdout) lines are collected as they come."""

    name: str
    process: trio.Process
    stderr: list[str] = attrs.field(factory=list)
    stdout: list[str] = attrs.field(factory=list)
    records: list[dict[str, Any]] = attrs.field(factory=list)
    """The JSON log records among the stderr lines."""
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _open: int = 0
    """Pipes still being read."""

    async def wait_for(self, found: Callable[[Proc], Any], what: str,
                       limit: float = WAIT_LIMIT) -> Any:
        """Until `found(self)` is truthy (re-checked on every new line); its value.
        AssertionError naming `what` if the process exits or `limit` seconds pass first."""
        with trio.move_on_after(limit):
            while not (value := found(self)):
                if self.process.returncode is not None and not self._open:
                    break
                await self._changed.wait()
            else:
                return value
        raise AssertionError(f"{self.name}: no {what} within {limit} s (exit status "
                             f"{self.process.returncode}); it last said:\n"
                             + "\n".join(self.stderr[-30:]))

    async def pump(self, stream: trio.abc.ReceiveStream | None, into: list[str]) -> None:
        if stream is None:
            return
        self._open += 1
        buf = b""
        try:
            async for chunk in stream:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    into.append(line)
                    if into is self.stderr and line.startswith("{"):
                        with contextlib.suppress(ValueError):
                            self.records.append(json.loads(line))
                self._wake()
        finally:
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


@contextlib.asynccontextmanager
async def open_processes() -> AsyncIterator[Callable[[str, Sequence[str]], Any]]:
    """Start processes with `await start(name, args, env=None)` (`env` adds to this
    process's environment); all are killed on the way out."""
    procs: list[Proc] = []
    async with trio.open_nursery() as nursery:

        async def start(name: str, args: Sequence[str],
                        env: Mapping[str, str] | None = None) -> Proc:
            process = await trio.lowlevel.open_process(
                [sys.executable, *args], cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
            proc = Proc(name, process)
            procs.append(proc)
            nursery.start_soon(proc.pump, process.stdout, proc.stdout)
            nursery.start_soon(proc.pump, process.stderr, proc.stderr)
            return proc

        try:
            yield start
        except BaseException:
            for proc in procs:  # what each process said last, to tell why
                log.error("%s (exit %s) last said:\n%s", proc.name, proc.process.returncode,
                          "\n".join(proc.stderr[-40:]))
            raise
        finally:
            for proc in procs:
                if proc.process.returncode is None:
                    proc.process.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                for proc in procs:
                    await proc.process.wait()
            nursery.cancel_scope.cancel()


def logged(proc: Proc, msg: str) -> list[dict[str, Any]]:
    """The JSON log records whose message is `msg`."""
    return [r for r in proc.records if r.get("msg") == msg]


def server_url(proc: Proc) -> str | None:
    """The URL from a server's start banner, once it said it: a JSON record with
    --log-format json, else a text line."""
    for record in proc.records:
        if str(record.get("msg", "")).startswith("trio-a2a server on "):
            return str(record["url"])
    for line in proc.stderr:
        _, found, rest = line.partition("trio-a2a server on ")
        if found:
            return rest.split()[0]
    return None
