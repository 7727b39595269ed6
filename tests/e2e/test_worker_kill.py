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

import json
import logging
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from actors.store_port import TaskRecord
from runtime.store import open_sqlite_backend
from tests.e2e.folding import fold, parts_text
from tests.e2e.procs import Proc, logged, open_processes, server_url

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.interop]

SCRIPT = Path(__file__).with_name("sdk_stream_script.py")
COUNT = 50
CONCURRENCY = 8
KILL_AFTER_STARTS = 10
"""Worker A dies once it has started this many sessions (so it has finished some
and holds several mid-stream)."""
LEASE_TTL = 2.0
REAP_INTERVAL = 0.25
TEST_TIMEOUT = 60


def text(i: int) -> str:
    return f"task {i:03d}: the quick brown fox jumps over the lazy dog"  # as the script sends


def _in_flight(proc: Proc) -> set[str]:
    started = {r["task_id"] for r in logged(proc, "session started")}
    return started - {r["task_id"] for r in logged(proc, "task released")}


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
        url = await server.wait_for(server_url, "listening line")
        worker = ["-m", "runtime", "worker", "--server", url, "--agent",
                  "tests.e2e.agents:slow_echo", "--concurrency", str(CONCURRENCY), *json_logs]
        a = await start("worker-a", [*worker, "--name", "a"])
        await start("worker-b", [*worker, "--name", "b"])
        a_id = (await a.wait_for(lambda p: logged(p, "worker started"), "start"))[0]["worker_id"]
        await server.wait_for(lambda p: len(logged(p, "worker registered")) >= 2,
                              "registration of both workers")

        client = await start("sdk-client", [str(SCRIPT), url, str(COUNT)])
        await a.wait_for(lambda p: len(logged(p, "session started")) >= KILL_AFTER_STARTS
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
        if [parts_text(a.parts) for a in record.task.artifacts or ()] != [want]:
            problems.append(f"task {i}: stored artifacts {record.task.artifacts}")
        # 2. one completing attempt: one `completed` in the durable log, and one
        # claim more than the retries the reaper made
        marks_in_log = [e for e in log_events if e.status_update is not None
                        and retry_mark in parts_text(getattr(e.status_update.status.message,
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
        if fold(events) != [want]:
            problems.append(f"task {i}: the stream folds to {fold(events)}, want [{want!r}]")
        after = events[marks[-1] + 1:] if marks else events
        if fold(after) != [want]:
            problems.append(f"task {i}: stream after the last retry mark rebuilds "
                            f"{fold(after)}, want [{want!r}]")
    assert not problems, "\n".join(problems)
    # The kill mattered: the server re-queued tasks that worker A held when it died.
    assert retried, f"no task was retried; A held {sorted(seen.killed_holding)} when killed"
    log.info("worker A held %d sessions when killed; %d tasks were retried",
             len(seen.killed_holding), len(retried))
