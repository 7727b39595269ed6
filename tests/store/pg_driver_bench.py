"""Which way to drive psycopg 3 under trio: a benchmark command, not a test.

    python -m tests.store.pg_driver_bench [--commits 2000] [--concurrency 16] [--rounds 3]

`threads`: sync `psycopg.Connection`s from a bounded pool, each call one
`trio.to_thread.run_sync` (the whole transaction in the thread). `generators`:
runtime/store/postgres_driver.py, psycopg's generator protocol answered by
`trio.lowlevel.wait_readable/wait_writable` on the trio thread. Same SQL, same
pool sizes; every commit is a small transaction (insert or sequence-checked
update of a task plus one event) followed by a read of that task and its log.
Each round runs on a database of its own (created and dropped here). Figures:
docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid

import psycopg
import trio
from psycopg.conninfo import make_conninfo

from runtime.store.postgres_driver import PgConnection

ADMIN = os.environ.get(
    "TRIO_A2A_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = """
CREATE TABLE tasks (task_key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id text COLLATE "C" NOT NULL UNIQUE, seq bigint NOT NULL, status_at float8 NOT NULL,
  task_json text NOT NULL);
CREATE TABLE events (task_key bigint NOT NULL, seq bigint NOT NULL, event_json text NOT NULL,
  PRIMARY KEY (task_key, seq));
"""
INS = ("INSERT INTO tasks (task_id, seq, status_at, task_json) VALUES ($1, $2, $3, $4)"
       " ON CONFLICT DO NOTHING")
UPD = "UPDATE tasks SET seq = $1, status_at = $2, task_json = $3 WHERE task_id = $4 AND seq = $5"
EV = ("INSERT INTO events (task_key, seq, event_json)"
      " VALUES ((SELECT task_key FROM tasks WHERE task_id = $1), $2, $3)")
GET = "SELECT task_json, seq, status_at FROM tasks WHERE task_id = $1"
READ = ("SELECT seq, event_json FROM events WHERE task_key ="
        " (SELECT task_key FROM tasks WHERE task_id = $1) AND seq > $2 ORDER BY seq LIMIT 100")
BODY = json.dumps({"id": "x", "status": {"state": "working"}, "history": ["hello"] * 10})


def pct(sql: str) -> str:
    out = sql
    for n in range(9, 0, -1):
        out = out.replace(f"${n}", "%s")
    return out


class Threads:
    def __init__(self, url: str, size: int) -> None:
        self.conns = [psycopg.connect(url) for _ in range(size)]
        self.limiter = trio.CapacityLimiter(size)

    async def run(self, fn):  # type: ignore[no-untyped-def]
        async with self.limiter:
            conn = self.conns.pop()
            try:
                return await trio.to_thread.run_sync(fn, conn, limiter=trio.CapacityLimiter(1))
            finally:
                self.conns.append(conn)

    async def commit(self, task_id: str, seq: int) -> None:
        def fn(conn: psycopg.Connection) -> None:
            if seq == 1:
                cur = conn.execute(pct(INS), (task_id, 1, time.time(), BODY))
            else:
                cur = conn.execute(pct(UPD), (seq, time.time(), BODY, task_id, seq - 1))
            assert cur.rowcount == 1
            conn.execute(pct(EV), (task_id, seq, BODY))
            conn.commit()
        await self.run(fn)

    async def read(self, task_id: str) -> None:
        def fn(conn: psycopg.Connection) -> None:
            conn.execute(pct(GET), (task_id,)).fetchall()
            conn.execute(pct(READ), (task_id, 0)).fetchall()
            conn.commit()
        await self.run(fn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


class Generators:
    def __init__(self, conns: list[PgConnection]) -> None:
        self.conns = conns
        self.limiter = trio.CapacityLimiter(len(conns))

    @classmethod
    async def open(cls, url: str, size: int) -> Generators:
        return cls([await PgConnection.connect(url) for _ in range(size)])

    async def commit(self, task_id: str, seq: int) -> None:
        async with self.limiter:
            conn = self.conns.pop()
            try:
                await conn.script("BEGIN")
                if seq == 1:
                    res = await conn.execute(INS, (task_id, 1, time.time(), BODY))
                else:
                    res = await conn.execute(UPD, (seq, time.time(), BODY, task_id, seq - 1))
                assert res.rowcount == 1
                await conn.execute(EV, (task_id, seq, BODY))
                await conn.script("COMMIT")
            finally:
                self.conns.append(conn)

    async def read(self, task_id: str) -> None:
        async with self.limiter:
            conn = self.conns.pop()
            try:
                await conn.execute(GET, (task_id,))
                await conn.execute(READ, (task_id, 0))
            finally:
                self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


async def workload(store, commits: int, concurrency: int, tag: str) -> None:  # type: ignore[no-untyped-def]
    per = commits // concurrency

    async def client(n: int) -> None:
        task_id, seq = "", 0
        for i in range(per):
            if i % 4 == 0:
                task_id, seq = f"{tag}{n}-{i}", 0
            seq += 1
            await store.commit(task_id, seq)
            await store.read(task_id)

    async with trio.open_nursery() as nursery:
        for n in range(concurrency):
            nursery.start_soon(client, n)


async def one_round(kind: str, commits: int, concurrency: int, pool: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, threads included)."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = make_conninfo(ADMIN, dbname=name)
    try:
        with psycopg.connect(url) as conn:
            conn.execute(SCHEMA)
        store = Threads(url, pool) if kind == "threads" else await Generators.open(url, pool)
        await workload(store, 160, concurrency, "w")  # warm up: connections, prepared statements
        t0, c0 = time.perf_counter(), time.process_time()
        await workload(store, commits, concurrency, "m")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
        return wall, cpu
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pools", default="4,16", help="pool sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):  # interleaved, so drift hits every variant alike
        for pool in (int(p) for p in args.pools.split(",")):
            for kind in ("threads", "generators"):
                figures = trio.run(one_round, kind, args.commits, args.concurrency, pool)
                results.setdefault((kind, pool), []).append(figures)
    calls = args.commits * 2  # each commit is followed by a read
    print(f"{args.commits} commits + {args.commits} reads, concurrency {args.concurrency}, "
          f"median of {args.rounds} rounds")
    for (kind, pool), runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{kind:10s} pool {pool:2d}: {calls / wall:6,.0f} calls/s, "
              f"CPU {cpu:.2f} s ({cpu / calls * 1e6:.0f} us/call)")


if __name__ == "__main__":
    main()
