"""Cross-replica event latency: a benchmark command, not a test.

    python -m tests.store.replica_latency [--events 200] [--interval 0.01] [--rounds 3]

Two servers (`open_server`, store `postgres`) on one fresh database, as two
replicas behind a load balancer would be. A task is created through replica A's
store; an SSE `SubscribeToTask` stream is open on each replica. Then A's store
writes `--events` artifact events, one every `--interval` seconds (each its own
commit), and every frame's arrival is timed on both streams:

* **A → B**: from the start of the write on A to the frame on B's stream: A's
  commit, the NOTIFY, B's reload of the task and read of the event, B's SSE frame;
* **A → A**: the same write to the frame on A's own stream, the single-replica
  baseline (A's commit, A's in-memory tail, A's SSE frame);
* **commit**: the write on A until its commit returned.

The database is created and dropped here (TRIO_A2A_TEST_DATABASE_URL names the
server, as for the tests). Figures: docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from typing import Any

import httpx
import trio

from protocol.models import Artifact, Part, StreamResponse, TaskArtifactUpdateEvent, TaskState
from protocol.sse import SSEDecoder
from runtime.server import ServerConfig, open_server
from tests.postgres import create_database, drop_database
from tests.store.test_replicas import new_task, status


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


async def one_round(url: str, events: int, interval: float) -> dict[str, list[float]]:
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


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.01,
                        help="seconds between writes on A")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        url = create_database("trio_a2a_bench")
        try:
            for path, values in trio.run(one_round, url, args.events, args.interval).items():
                samples.setdefault(path, []).extend(values)
        finally:
            drop_database(url)
    print(f"{args.events} events x {args.rounds} rounds, one write every "
          f"{args.interval * 1000:.0f} ms; milliseconds from the write on A to the SSE frame")
    for path, values in samples.items():
        ms = [v * 1000 for v in values]
        print(f"{path:6s}: p50 {pct(ms, 50):6.2f}  p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):6.2f}"
              f"  max {max(ms):6.2f}  mean {statistics.fmean(ms):6.2f}  (n={len(ms)})")


if __name__ == "__main__":
    main()
