"""A worker process killed mid-stream: every task still completes exactly once.

Real processes on loopback: `python -m runtime server` (SQLite file, no local
workers, a short lease), two `python -m runtime worker` processes running
`tests.e2e.agents:slow_echo` (loaded by import path, as a user's agent is), and
the official a2a-sdk client in a subprocess sending COUNT streaming tasks at
once. Once worker A holds several tasks mid-stream it is killed with SIGKILL:
no goodbye, no release; its leases run out and the reaper re-queues its tasks,
which worker B then runs.

"Exactly once" here means, for every task i:

1. Stored result. GetTask after the stream has ended says `completed` and
   holds exactly one artifact, whose text is `text(i)`: not a prefix of it (the
   dead attempt's partial output is not what remains) and not more (no second
   copy next to the retry's). The server's SQLite file, read after it stopped,
   holds the same.
2. One completing attempt. The task's durable event log has exactly one
   terminal status, `completed`; the task was claimed exactly once more than
   the reaper re-queued it, and no lease is left on it.
3. The stream. The client's message/stream stays open through the retry and
   ends with exactly one terminal status event, `completed`. Chunks of the dead
   attempt that reached the client before it died stay in the stream (an SSE
   stream cannot take back what it sent), but the server follows them with a
   `task` snapshot without them and a `working` status naming the expired
   lease; so a client folding the stream as A2A defines it (a task event is a
   snapshot, an artifact update replaces or, with `append`, extends its
   artifact) ends with exactly one artifact, `text(i)`; and so do the artifact
   events after the last retry mark alone.

And the kill must matter: at least one task was held by worker A when it died,
which the server's own record shows (the retry status naming A's lease).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from actors.store_port import TaskRecord
from runtime.store import open_sqlite_backend

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.interop]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("sdk_stream_script.py")
COUNT = 50
CONCURRENCY = 8
KILL_AFTER_STARTS = 10
"""Worker A dies once it has started this many sessions (so it has finished some
and holds several mid-stream)."""
LEASE_TTL = 2.0
REAP_INTERVAL = 0.25
TEST_TIMEOUT = 60
WAIT_LIMIT = 30
"""Seconds for any one step (a process starting, the client's report), so that a
step that never happens fails with its name and the process's last words."""


def text(i: int) -> str:
    return f"task {i:03d}: the quick brown fox jumps over the lazy dog"  # as the script sends


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

    async def wait_for(self, found: Callable[[Proc], Any], what: str) -> Any:
        """Until `found(self)` is truthy (re-checked on every new line); its value.
        AssertionError naming `what` if the process exits or WAIT_LIMIT passes first."""
        with trio.move_on_after(WAIT_LIMIT):
            while not (value := found(self)):
                if self.process.returncode is not None and not self._open:
                    break
                await self._changed.wait()
            else:
                return value
        raise AssertionError(f"{self.name}: no {what} within {WAIT_LIMIT} s (exit status "
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
    """Start processes with `await start(name, args)`; all are killed on the way out."""
    procs: list[Proc] = []
    async with trio.open_nursery() as nursery:

        async def start(name: str, args: Sequence[str]) -> Proc:
            process = await trio.lowlevel.open_process(
                [sys.executable, *args], cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
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


def _msg(proc: Proc, msg: str) -> list[dict[str, Any]]:
    return [r for r in proc.records if r.get("msg") == msg]


def _server_url(proc: Proc) -> str | None:
    for record in proc.records:  # the start banner is a JSON line too (--log-format json)
        if str(record.get("msg", "")).startswith("trio-a2a server on "):
            return str(record["url"])
    return None


def _in_flight(proc: Proc) -> set[str]:
    started = {r["task_id"] for r in _msg(proc, "session started")}
    return started - {r["task_id"] for r in _msg(proc, "task released")}


@attrs.frozen
class Seen:
    tasks: list[dict[str, Any]]
    """Per task, what the SDK client saw: its stream's events and GetTask after it."""
    a_id: str
    killed_holding: set[str]
    """Tasks worker A had started and not released when it was killed (its log)."""


async def test_killed_worker_tasks_complete_exactly_once(tmp_path: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        seen = await run_scenario(tmp_path)
        stored = await read_store(tmp_path / "tasks.sqlite3",
                                  [t["task_id"] for t in seen.tasks if t.get("task_id")])
    check_exactly_once(seen, stored)


async def run_scenario(tmp_path: Path) -> Seen:
    """Server, two workers, the SDK client; kill worker A mid-stream; stop the server."""
    json_logs = ["--log-format", "json"]
    async with open_processes() as start:
        server = await start("server", [
            "-m", "runtime", "server", "--port", "0", "--store", "sqlite",
            "--data-dir", str(tmp_path), "--local-workers", "0",
            "--lease-ttl", str(LEASE_TTL), "--reap-interval", str(REAP_INTERVAL), *json_logs])
        url = await server.wait_for(_server_url, "listening line")
        worker = ["-m", "runtime", "worker", "--server", url, "--agent",
                  "tests.e2e.agents:slow_echo", "--concurrency", str(CONCURRENCY), *json_logs]
        a = await start("worker-a", [*worker, "--name", "a"])
        await start("worker-b", [*worker, "--name", "b"])
        a_id = (await a.wait_for(lambda p: _msg(p, "worker started"), "start"))[0]["worker_id"]
        await server.wait_for(lambda p: len(_msg(p, "worker registered")) >= 2,
                              "registration of both workers")

        client = await start("sdk-client", [str(SCRIPT), url, str(COUNT)])
        await a.wait_for(lambda p: len(_msg(p, "session started")) >= KILL_AFTER_STARTS
                         and len(_in_flight(p)) >= 2, "sessions to kill it in")
        a.process.kill()
        killed_holding = _in_flight(a)
        await a.process.wait()

        await client.wait_for(lambda p: any(line.startswith('{"report"') for line in p.stdout),
                              "report")
        assert await client.process.wait() == 0, "\n".join(client.stderr[-30:])
        server.process.terminate()  # a clean stop: the store file is closed for reading
        assert await server.process.wait() == 0, "\n".join(server.stderr[-30:])
    report = json.loads(next(line for line in client.stdout
                             if line.startswith('{"report"')))["report"]
    return Seen(report["tasks"], a_id, killed_holding)


async def read_store(path: Path, task_ids: list[str]) -> dict[str, tuple[TaskRecord, list[Any]]]:
    """Each task's record and event log, as the server left them in its SQLite file."""
    out = {}
    async with open_sqlite_backend(path) as backend:
        for task_id in task_ids:
            record = await backend.get_task(task_id)
            assert record is not None, task_id
            out[task_id] = (record, [e.event for e in await backend.read_events(task_id, 0, 1000)])
    return out


def check_exactly_once(seen: Seen, stored: dict[str, tuple[TaskRecord, list[Any]]]) -> None:
    """Every clause of the module docstring, for every task; all problems at once."""
    assert len(seen.tasks) == COUNT
    retry_mark = f"the lease of worker {seen.a_id!r} expired; retrying"
    retried: list[str] = []
    problems: list[str] = []
    for t in seen.tasks:
        i, task_id, events = t["i"], t.get("task_id"), t["events"]
        want = text(i)
        if "stream_error" in t or "get_error" in t or "final" not in t:
            problems.append(f"task {i}: {t.get('stream_error') or t.get('get_error')}")
            continue
        # 1. the stored result, as GetTask returns it and as the store file holds it
        final = t["final"]
        if final["state"] != "TASK_STATE_COMPLETED":
            problems.append(f"task {i}: ended {final['state']}")
        if [a["text"] for a in final["artifacts"]] != [want]:
            problems.append(f"task {i}: artifacts {final['artifacts']}, want one {want!r}")
        record, log_events = stored[task_id]
        if [_text(a.parts) for a in record.task.artifacts or ()] != [want]:
            problems.append(f"task {i}: stored artifacts {record.task.artifacts}")
        # 2. one completing attempt: one `completed` in the durable log, and one
        # claim more than the retries the reaper made
        marks_in_log = [e for e in log_events if e.status_update is not None
                        and retry_mark in _text(getattr(e.status_update.status.message,
                                                        "parts", None) or ())]
        ends = [e.status_update.status.state.value for e in log_events
                if e.status_update is not None
                and e.status_update.status.state.value != "TASK_STATE_WORKING"]
        if ends != ["TASK_STATE_COMPLETED"]:
            problems.append(f"task {i}: the log's end states are {ends}")
        if record.dispatch.attempts != 1 + len(marks_in_log) or record.dispatch.lease:
            problems.append(f"task {i}: {record.dispatch.attempts} claims for "
                            f"{len(marks_in_log)} retries; lease {record.dispatch.lease}")
        # 3. the stream
        statuses = [e for e in events if e["kind"] == "status_update"]
        terminal = [e for e in statuses if e["state"] != "TASK_STATE_WORKING"]
        if [e["state"] for e in terminal] != ["TASK_STATE_COMPLETED"] or events[-1] != terminal[-1]:
            problems.append(f"task {i}: stream ends {[e.get('state') for e in events[-2:]]}")
        marks = [n for n, e in enumerate(events)
                 if e["kind"] == "status_update" and retry_mark in e.get("status_text", "")]
        if len(marks) != len(marks_in_log):
            problems.append(f"task {i}: {len(marks)} retry marks streamed, "
                            f"{len(marks_in_log)} stored")
        if marks:
            retried.append(task_id)
        if _rebuild(events) != [want]:
            problems.append(f"task {i}: the stream folds to {_rebuild(events)}, want [{want!r}]")
        after = events[marks[-1] + 1:] if marks else events
        if _rebuild(after) != [want]:
            problems.append(f"task {i}: stream after the last retry mark rebuilds "
                            f"{_rebuild(after)}, want [{want!r}]")
    assert not problems, "\n".join(problems)
    # The kill mattered: the server re-queued tasks that worker A held when it died.
    assert retried, f"no task was retried; A held {sorted(seen.killed_holding)} when killed"
    log.info("worker A held %d sessions when killed; %d tasks were retried",
             len(seen.killed_holding), len(retried))


def _text(parts: Any) -> str:
    return "".join(p.text or "" for p in parts)


def _rebuild(events: list[dict[str, Any]]) -> list[str]:
    """The artifacts' texts as a client folds the stream: a task event is a snapshot,
    an artifact update replaces its artifact or (append) extends it."""
    texts: dict[str, str] = {}
    for e in events:
        if e["kind"] == "task":
            texts = {a["artifact_id"]: a["text"] for a in e["artifacts"]}
        elif e["kind"] == "artifact_update":
            aid = e["artifact_id"]
            texts[aid] = (texts.get(aid, "") if e["append"] else "") + e["text"]
    return list(texts.values())
