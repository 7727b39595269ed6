"""Across replicas: event latency and cancel latency, two figures of `python -m bench replicas`.

    python -m bench.replica_latency [--events 200] [--interval 0.01] [--cancels 50] [--rounds 3]

Two servers (`open_server`, store `postgres`) on one fresh database, as two
replicas behind a load balancer would be.

**Events.** A task is created through replica A's store; an SSE
`SubscribeToTask` stream is open on each replica. A's store writes `--events`
artifact events, one every `--interval` seconds (each its own commit), and every
frame's arrival is timed on both streams:

* **A -> B**: from the start of the write on A to the frame on B's stream: A's
  commit, the NOTIFY, B's reload of the task and read of the event, B's SSE frame;
* **A -> A**: the same write to the frame on A's own stream, the single-replica
  baseline (A's commit, A's in-memory tail, A's SSE frame);
* **commit**: the write on A until its commit returned.

**Cancels.** A runs an embedded worker whose agent holds each task until it is
canceled; B has no worker. For each of `--cancels` tasks (sent to A, running):
CancelTask over JSON-RPC to B, timed from the request to the moment the agent on
A's worker sees its cancellation (**cancel via B**); and, as the one-replica
baseline, the same through A (**cancel via A**).

The databases are created and dropped here (TRIO_A2A_BENCH_DATABASE_URL names
the server, default postgresql://postgres@127.0.0.1:5432/postgres). Figures:
docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from typing import Any

import httpx
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from bench import pgdb
from protocol.models import (
    Artifact,
    Part,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from protocol.sse import SSEDecoder
from runtime.server import ServerConfig, open_server

EVENT_P50_LIMIT_MS = 10.0
CANCEL_P99_LIMIT_MS = 200.0


def new_task(task_id: str) -> Task:
    return Task(id=task_id, context_id="ctx", status=TaskStatus(state=TaskState.SUBMITTED))


def status(task_id: str, state: TaskState) -> StreamResponse:
    return StreamResponse(status_update=TaskStatusUpdateEvent(
        task_id=task_id, context_id="ctx", status=TaskStatus(state=state)))


def chunk(task_id: str, i: int) -> StreamResponse:
    return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
        task_id=task_id, context_id="ctx", append=i > 0,
        artifact=Artifact(artifact_id="out", parts=[Part(text=f"chunk {i} " + "x" * 64)])))


async def follow(url: str, task_id: str, arrived: dict[int, float], opened: trio.Event) -> None:
    """Time each frame of SubscribeToTask on the server at `url`, by its SSE id."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client, \
            client.stream("POST", "/", content=json.dumps(body), headers=headers) as r:
        decoder = SSEDecoder()
        async for data in r.aiter_bytes():
            now = trio.current_time()
            for frame in decoder.feed(data):
                if frame.id:
                    arrived[int(frame.id)] = now
                    opened.set()


async def event_round(url: str, events: int, interval: float) -> dict[str, list[float]]:
    common: dict[str, Any] = {"port": 0, "store": "postgres", "database_url": url,
                              "local_workers": 0}
    async with open_server(ServerConfig(**common)) as a, open_server(ServerConfig(**common)) as b:
        await a.store.create_task(new_task("bench"), owner="")
        await a.store.write("bench", [status("bench", TaskState.WORKING)])
        sent: dict[int, float] = {}
        committed: dict[int, float] = {}
        on_a: dict[int, float] = {}
        on_b: dict[int, float] = {}
        async with trio.open_nursery() as nursery:
            for server, arrived in ((a, on_a), (b, on_b)):
                opened = trio.Event()
                nursery.start_soon(follow, server.url, "bench", arrived, opened)
                await opened.wait()
            for i in range(events):
                start = trio.current_time()
                written = await a.store.write("bench", [chunk("bench", i)])
                sent[written.seq] = start
                committed[written.seq] = trio.current_time() - start
                await trio.sleep(interval)
            await a.store.write("bench", [status("bench", TaskState.COMPLETED)])
            # both streams end with the terminal event
    return {"A -> B": [on_b[s] - t for s, t in sent.items()],
            "A -> A": [on_a[s] - t for s, t in sent.items()],
            "commit": list(committed.values())}


class Holder:
    """An agent that says it is working and holds the task until it is canceled,
    noting when it saw the cancellation."""

    def __init__(self) -> None:
        self.running: dict[str, trio.Event] = {}
        self.canceled: dict[str, trio.Event] = {}
        self.canceled_at: dict[str, float] = {}

    def spec(self) -> AgentSpec:
        return AgentSpec(name="holder", run=self.run, description="Holds until canceled.")

    async def run(self, ctx: TaskContext, emit: Emitter) -> None:
        try:
            await emit.working("holding")
            self.running.setdefault(ctx.task_id, trio.Event()).set()
            await trio.sleep_forever()
        finally:
            self.canceled_at[ctx.task_id] = trio.current_time()
            self.canceled.setdefault(ctx.task_id, trio.Event()).set()


async def rpc(client: httpx.AsyncClient, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    r = await client.post("/", json=body, headers={"A2A-Version": "1.0"})
    reply = r.json()
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


async def cancel_round(url: str, cancels: int) -> dict[str, list[float]]:
    holder = Holder()
    common: dict[str, Any] = {"port": 0, "store": "postgres", "database_url": url}
    out: dict[str, list[float]] = {"cancel via B": [], "cancel via A": []}
    async with open_server(ServerConfig(**common, agent=holder.spec())) as a, \
            open_server(ServerConfig(**common, local_workers=0)) as b, \
            httpx.AsyncClient(base_url=a.url, timeout=30) as ca, \
            httpx.AsyncClient(base_url=b.url, timeout=30) as cb:
        for i in range(2 * cancels):
            via, client = ("cancel via B", cb) if i % 2 == 0 else ("cancel via A", ca)
            message = {"messageId": f"m{i}", "role": "ROLE_USER", "parts": [{"text": "hold"}]}
            sent = await rpc(ca, "SendMessage", {"message": message,
                                                 "configuration": {"returnImmediately": True}})
            task_id = sent["task"]["id"]
            with trio.fail_after(30):
                await holder.running.setdefault(task_id, trio.Event()).wait()
            start = trio.current_time()
            await rpc(client, "CancelTask", {"id": task_id})
            with trio.fail_after(30):
                await holder.canceled.setdefault(task_id, trio.Event()).wait()
            out[via].append(holder.canceled_at[task_id] - start)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(events: int, interval: float, cancels: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per path, over `rounds` rounds, each on a fresh database."""
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        name, url = pgdb.create_database("replica_latency")
        try:
            found = trio.run(event_round, url, events, interval)
            found.update(trio.run(cancel_round, url, cancels))
        finally:
            pgdb.drop_database(name)
        for path, values in found.items():
            samples.setdefault(path, []).extend(v * 1000 for v in values)
    return samples


def report(samples: dict[str, list[float]]) -> tuple[str, bool]:
    """The table and the two target checks; whether both passed."""
    lines = ["milliseconds: events from the write on A to the SSE frame; cancels from "
             "CancelTask to the agent seeing it"]
    for path, ms in samples.items():
        lines.append(f"{path:13s} p50 {pct(ms, 50):7.2f}  p90 {pct(ms, 90):7.2f}  "
                     f"p99 {pct(ms, 99):7.2f}  max {max(ms):7.2f}  "
                     f"mean {statistics.fmean(ms):7.2f}  (n={len(ms)})")
    event_p50 = pct(samples["A -> B"], 50)
    cancel_p99 = pct(samples["cancel via B"], 99)
    checks = [(f"cross-replica event p50 <= {EVENT_P50_LIMIT_MS:g} ms", event_p50,
               event_p50 <= EVENT_P50_LIMIT_MS),
              (f"cross-replica cancel p99 <= {CANCEL_P99_LIMIT_MS:g} ms", cancel_p99,
               cancel_p99 <= CANCEL_P99_LIMIT_MS)]
    lines.append("")
    lines.extend(f"  {'PASS' if ok else 'FAIL'}  {label}: {value:.2f} ms"
                 for label, value, ok in checks)
    return "\n".join(lines), all(ok for *_, ok in checks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_latency",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200,
                        help="events written through A per round (default 200)")
    parser.add_argument("--interval", type=float, default=0.01,
                        help="seconds between writes on A (default 0.01)")
    parser.add_argument("--cancels", type=int, default=50,
                        help="tasks canceled through each replica per round (default 50)")
    parser.add_argument("--latency-rounds", type=int, default=3,
                        help="rounds, each on a fresh database (default 3)")


REPLICA_TARGETS = "sdk-python-pg,trio-postgres,trio-postgres2,trio-sqlite"


def replicas_main(argv: list[str]) -> int:
    """`python -m bench replicas`: the throughput table of the PostgreSQL targets
    (blocking SendMessage at 16 clients unless --clients says otherwise), then both
    latencies, in one run. Options other than this module's go to the main bench."""
    parser = argparse.ArgumentParser(
        prog="python -m bench replicas",
        description="Replicas on PostgreSQL: blocking SendMessage on 1 and 2 replicas, the "
        "SQLite single process and the a2a-sdk server on PostgreSQL side by side, then the "
        "cross-replica event and cancel latencies. Other options are the main bench's "
        "(python -m bench --help).")
    add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    from bench.run import main as bench_main

    if not any(a == "--targets" or a.startswith("--targets=") for a in rest):
        rest = ["--targets", REPLICA_TARGETS, *rest]
    status = bench_main(rest)
    if status:
        return status
    print("\nAcross replicas (two open_server replicas on one fresh database per round):")
    text, ok = report(measure(args.events, args.interval, args.cancels, args.latency_rounds))
    print(text)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    text, ok = report(measure(args.events, args.interval, args.cancels, args.latency_rounds))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
