"""Many idle workers in one trio program, for ``python -m bench idle-workers``.

    python -m bench.worker_host --server http://127.0.0.1:8000 --workers 250

opens ``--workers`` workers with `runtime.worker.open_worker` (each its own
connection to the server's worker link, concurrency 1 unless told otherwise)
and keeps them connected until stdin closes. Lines on stdout, read by the bench:

* ``BASE {json}`` once imports are done, before any worker is opened
  (``rss_kib``: this process's RSS then),
* ``READY {json}`` when every worker has registered (``seconds`` it took),
* ``STATS {json}`` in answer to each ``STATS`` line on stdin: workers connected,
  registrations, connection attempts, heartbeats sent, warnings logged (by
  logger), RSS.

``QUIT`` on stdin (or its end) closes every worker and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter

import trio

from bench.procs import rss_kib
from runtime.worker import RunningWorker, WorkerConfig, open_worker


class _CountWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_logger: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.by_logger[record.name] += 1


def _emit(kind: str, payload: dict) -> None:
    sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _stats(workers: list[RunningWorker], warnings: _CountWarnings) -> dict:
    sent = connected = registrations = connects = 0
    for w in workers:
        st = w.statistics()
        connected += st.connected
        registrations += st.registrations
        connects += st.connects
        beat = w.connection.heartbeat if w.connection is not None else None
        sent += beat.sent if beat is not None else 0
    return {
        "workers": len(workers),
        "connected": connected,
        "registrations": registrations,
        "connects": connects,
        "heartbeats_sent": sent,
        "warnings": dict(warnings.by_logger),
        "rss_kib": rss_kib(os.getpid()),
    }


async def _hold(url: str, name: str, seed: int, args: argparse.Namespace,
                workers: list[RunningWorker], *,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    config = WorkerConfig(heartbeat_interval=args.heartbeat_interval, seed=seed)
    async with open_worker(url, token=args.token, concurrency=args.concurrency, name=name,
                           hostname="bench-idle", config=config) as worker:
        workers.append(worker)
        task_status.started()
        await trio.sleep_forever()


async def _commands(workers: list[RunningWorker], warnings: _CountWarnings) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buf = b""
    async with stdin:
        while True:
            data = await stdin.receive_some(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.strip().decode()
                if cmd == "QUIT":
                    return
                if cmd == "STATS":
                    _emit("STATS", _stats(workers, warnings))


async def run(args: argparse.Namespace, warnings: _CountWarnings) -> None:
    workers: list[RunningWorker] = []
    _emit("BASE", {"rss_kib": rss_kib(os.getpid()), "pid": os.getpid()})
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(args.workers):
            await nursery.start(_hold, args.server, f"{args.prefix}{i}", args.seed + i, args,
                                workers)
            if args.stagger:
                await trio.sleep(args.stagger)
        for w in list(workers):
            await w.wait_registered()
        _emit("READY", {"registered": len(workers), "seconds": trio.current_time() - t0})
        await _commands(workers, warnings)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="many idle workers in one process")
    ap.add_argument("--server", required=True, help="the server's base URL")
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--prefix", default="idle-", help="worker names are PREFIX0, PREFIX1, ...")
    ap.add_argument("--concurrency", type=int, default=1, help="slots per worker")
    ap.add_argument("--heartbeat-interval", type=float, default=None,
                    help="seconds (default: what the server says when registering)")
    ap.add_argument("--token", default=None)
    ap.add_argument("--stagger", type=float, default=0.002,
                    help="seconds between opening two workers (default 0.002)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    warnings = _CountWarnings()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(warnings)
    trio.run(run, args, warnings)


if __name__ == "__main__":
    main()
