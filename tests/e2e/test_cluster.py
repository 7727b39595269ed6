"""Three server replicas on one PostgreSQL, two workers, a replica and a worker killed.

Real processes on loopback: three `python -m runtime server --store postgres`
replicas on one fresh database (no local workers, a short lease), two
`python -m runtime worker` processes running `tests.e2e.agents:slow_echo`, each
given all three replicas' URLs in its own order, and the official a2a-sdk
client (tests/e2e/sdk_cluster_script.py) sending COUNT tasks round-robin over
the replicas, blocking, streaming and `returnImmediately` mixed.

Midway, replica 0 (the one worker A is connected to) is killed with SIGKILL and
started again on the same port; later worker B is killed with SIGKILL. What
must hold, for every task i:

1. Exactly one task exists for its contextId in the database (a message the
   client had to send again was never stored twice), and it `completed` once:
   one terminal status in its durable event log, one claim more than the
   retries the reaper made, no lease left.
2. Its own input and output: the stored task's user message is text(i), and it
   holds exactly one artifact whose text is text(i), as GetTask answers
   through another replica at the end and as the database holds it.
3. Streams: a stream folded as A2A defines it (a task event is a snapshot, an
   artifact update replaces or with `append` extends its artifact) gives
   exactly [text(i)], including every stream that was cut when its replica
   died and was resumed with SubscribeToTask on another replica: nothing
   missing, nothing twice.

And the kills must matter: worker A registered again with another replica (its
running sessions carried on), some streams were cut, some requests failed over
to another replica, the restarted replica accepted tasks again, and worker B held
tasks when it died that were retried.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.store_port import TaskQuery
from runtime.store.postgres import open_postgres_backend
from tests.e2e.agents import CHUNK_DELAY
from tests.e2e.folding import fold, parts_text
from tests.e2e.procs import Proc, logged, open_processes, server_url

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.slow, pytest.mark.interop]

SCRIPT = Path(__file__).with_name("sdk_cluster_script.py")
REPLICAS = 3
COUNT = 500
CLIENT_CONCURRENCY = 24
WORKER_CONCURRENCY = 8
KILL_REPLICA_AT = 120
"""Tasks done when replica 0 is killed."""
KILL_WORKER_AT = 300
"""Tasks done when worker B is killed."""
LEASE_TTL = 2.0
REAP_INTERVAL = 0.25
TEST_TIMEOUT = 240


def text(i: int) -> str:
    return f"cluster task {i:03d}: the quick brown fox jumps over the lazy dog"  # as the script


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def done(proc: Proc) -> int:
    return sum(1 for line in proc.stdout if line.startswith('{"progress": "done"'))


def in_flight(proc: Proc) -> set[str]:
    started = {r["task_id"] for r in logged(proc, "session started")}
    return started - {r["task_id"] for r in logged(proc, "task released")}


async def test_replica_and_worker_killed_every_task_completes_once(
        fresh_postgres_url: str) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        report, b_id, b_held = await run_scenario(fresh_postgres_url)
        stored = await read_store(fresh_postgres_url, report)
    check(report, stored, b_id, b_held)


async def run_scenario(url: str) -> tuple[list[dict[str, Any]], str, set[str]]:
    ports = free_ports(REPLICAS)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    json_logs = ["--log-format", "json"]

    def replica_args(n: int) -> list[str]:
        return ["-m", "runtime", "server", "--port", str(ports[n]), "--store", "postgres",
                "--database-url", url, "--local-workers", "0", "--replica-id", f"replica-{n}",
                "--lease-ttl", str(LEASE_TTL), "--reap-interval", str(REAP_INTERVAL), *json_logs]

    async with open_processes() as start:
        replicas = [await start(f"replica-{n}", replica_args(n)) for n in range(REPLICAS)]
        for r in replicas:
            await r.wait_for(server_url, "start")
        worker = ["-m", "runtime", "worker", "--agent", "tests.e2e.agents:slow_echo",
                  "--concurrency", str(WORKER_CONCURRENCY), *json_logs]
        # Each worker knows every replica, in its own order: A starts on replica 0
        # (the one killed), B on replica 1.
        a = await start("worker-a", [*worker, "--name", "a", "--server", ",".join(urls)])
        b = await start("worker-b", [*worker, "--name", "b"],
                        env={"TRIO_A2A_SERVER": ",".join(urls[1:] + urls[:1])})
        b_id = (await b.wait_for(lambda p: logged(p, "worker started"), "start"))[0]["worker_id"]
        await replicas[0].wait_for(lambda p: logged(p, "worker registered"), "worker A")
        await replicas[1].wait_for(lambda p: logged(p, "worker registered"), "worker B")

        client = await start("sdk-client", [str(SCRIPT), ",".join(urls), str(COUNT),
                                            str(CLIENT_CONCURRENCY)])
        await client.wait_for(lambda p: done(p) >= KILL_REPLICA_AT, "tasks before the kill")
        replicas[0].process.kill()
        await replicas[0].process.wait()
        log.info("replica 0 killed after %d tasks", done(client))
        await a.wait_for(lambda p: len(logged(p, "worker registered")) >= 2,
                         "worker A registering with another replica")
        await trio.sleep(1.0)  # down for a while: requests to it are refused meanwhile
        replicas[0] = await start("replica-0-again", replica_args(0))
        await replicas[0].wait_for(server_url, "restart")

        await client.wait_for(lambda p: done(p) >= KILL_WORKER_AT, "tasks before the worker kill")
        # Sessions start and end in batches; kill B just after one starts, so that
        # it dies mid-stream rather than with its output all stored.
        started = len(logged(b, "session started"))
        await b.wait_for(lambda p: len(logged(p, "session started")) > started, "a new session")
        await trio.sleep(CHUNK_DELAY * 2)
        b_held = in_flight(b)
        b.process.kill()
        await b.process.wait()
        log.info("worker B killed holding %d tasks", len(b_held))

        await client.wait_for(lambda p: any(line.startswith('{"report"') for line in p.stdout),
                              "report", limit=TEST_TIMEOUT / 2)
        assert await client.process.wait() == 0, "\n".join(client.stderr[-30:])
    report = json.loads(next(line for line in client.stdout
                             if line.startswith('{"report"')))["report"]
    return report["tasks"], b_id, b_held


async def read_store(url: str, tasks: list[dict[str, Any]]) -> dict[int, Any]:
    """Per task: the records stored for its contextId, and the first one's event log."""
    out: dict[int, Any] = {}
    async with open_postgres_backend(url, pool_size=2, run_migrations=False) as backend:
        for t in tasks:
            if "context_id" not in t:
                continue
            page = await backend.list_tasks(TaskQuery(context_id=t["context_id"]))
            events = ([e.event for e in await backend.read_events(page.records[0].task.id, 0,
                                                                 1000)]
                      if page.records else [])
            out[t["i"]] = (page.records, events)
    return out


def check(tasks: list[dict[str, Any]], stored: dict[int, Any], b_id: str,
          b_held: set[str]) -> None:
    """Every clause of the module docstring, for every task; all problems at once."""
    assert len(tasks) == COUNT
    retry_mark = f"the lease of worker {b_id!r} expired; retrying"
    problems: list[str] = []
    cut = failed_over = retried = after_restart = 0
    for t in tasks:
        i = t["i"]
        want = text(i)
        if "final" not in t:
            problems.append(f"task {i}: {t.get('failed') or t.get('errors')}")
            continue
        final = t["final"]
        failed_over += len(t["replicas"]) > 1
        # 1. one task for the context, completed once
        records, events = stored[i]
        if len(records) != 1:
            problems.append(f"task {i}: {len(records)} tasks stored for its context")
            continue
        record = records[0]
        ends = [e.status_update.status.state.value for e in events
                if e.status_update is not None
                and e.status_update.status.state.value != "TASK_STATE_WORKING"]
        if ends != ["TASK_STATE_COMPLETED"]:
            problems.append(f"task {i}: the log's end states are {ends}")
        marks = [e for e in events if e.status_update is not None
                 and retry_mark in parts_text(getattr(e.status_update.status.message, "parts",
                                                 None) or ())]
        retried += bool(marks)
        if record.dispatch.attempts < 1 + len(marks) or record.dispatch.lease:
            problems.append(f"task {i}: {record.dispatch.attempts} claims for {len(marks)} "
                            f"retries; lease {record.dispatch.lease}")
        # 2. its own input and output
        if final["state"] != "TASK_STATE_COMPLETED" or final["id"] != record.task.id:
            problems.append(f"task {i}: GetTask says {final['state']} for {final['id']}")
        if [a["text"] for a in final["artifacts"]] != [want]:
            problems.append(f"task {i}: artifacts {final['artifacts']}, want one {want!r}")
        if [parts_text(a.parts) for a in record.task.artifacts or ()] != [want]:
            problems.append(f"task {i}: stored artifacts {record.task.artifacts}")
        inputs = [parts_text(m.parts) for m in record.task.history or ()
                  if m.role.value == "ROLE_USER"]
        if inputs != [want] or final["history"] != [want]:
            problems.append(f"task {i}: inputs {inputs} / {final['history']}, want [{want!r}]")
        # 3. the stream, cut or not
        if t["mode"] == "streaming":
            cut += any(e["kind"] == "cut" for e in t["events"])
            if fold(t["events"]) != [want]:
                problems.append(f"task {i}: the stream folds to {fold(t['events'])}")
        after_restart += t["replicas"][-1] == 0 and i > COUNT // 2
    assert not problems, "\n".join(problems[:40])
    log.info("%d streams cut, %d tasks failed over, %d retried after worker B died "
             "(it held %d), %d late tasks through the restarted replica",
             cut, failed_over, retried, len(b_held), after_restart)
    assert cut and failed_over, "the replica kill cut no stream / moved no request"
    held_logs = {t["final"]["id"]: [
        (e.status_update.status.state.value, parts_text(getattr(e.status_update.status.message,
                                                            "parts", None) or ()))
        if e.status_update is not None else ("artifact" if e.artifact_update else "task", "")
        for e in stored[t["i"]][1]] for t in tasks if t["final"]["id"] in b_held}
    assert retried, f"no task was retried; B held {sorted(b_held)} when killed: {held_logs}"
    assert after_restart, "the restarted replica took no task"
