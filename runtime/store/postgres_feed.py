"""The PostgreSQL change feed: LISTEN/NOTIFY between server replicas.

Every commit notifies channel `trio_a2a_tasks` in its own transaction, one
payload per write: `"<version> <seq> <origin> <task id>"`, where origin names the
writing backend (one per server process) so that a replica can skip its own.
PostgreSQL delivers a notification only once the transaction commits, and never
one of a transaction that rolled back, so a reported change is always readable.

`PgChangeFeed` listens on a connection of its own (outside the pool, so a busy
pool never holds it up), driven on trio's socket waits like every other
connection (`PgConnection.wait_notifies`). When it is lost it reconnects with
exponential backoff and jitter, and after every (re)connect it tells the
listener to `resync`: notifications sent while nobody listened are gone, and
the listener compares versions instead. While idle it sends `SELECT 1` every
`ping_interval`, so a connection that died silently (a dropped route, no FIN) is
noticed within `ping_interval + ping_timeout` rather than never.

A payload over PostgreSQL's limit (8000 bytes: a very long task id) is sent
without the id; the listener then resyncs, as after a reconnect.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import psycopg
import trio

from actors.store_port import ChangeListener, TaskChange, TaskWrite
from runtime.store.postgres_driver import PgConnection
from runtime.store.postgres_pool import CONNECT_ERRORS, PgPool

__all__ = ["CHANNEL", "NOTIFY", "PgChangeFeed", "parse_payload", "payloads"]

logger = logging.getLogger(__name__)

CHANNEL = "trio_a2a_tasks"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::text[]) AS p"
"""All of a batch's notifications in one statement (one round trip per commit)."""
MAX_PAYLOAD = 7999
"""Bytes; PostgreSQL refuses a payload of 8000 or more."""

LOST = (psycopg.Error, OSError, trio.TooSlowError, trio.ClosedResourceError)


def payloads(origin: str, writes: Sequence[TaskWrite]) -> list[str]:
    """The notification payload of each write of a batch."""
    out = []
    for write in writes:
        r = write.record
        text = f"{r.version} {r.seq} {origin} {r.task_id}"
        out.append(text if len(text.encode()) <= MAX_PAYLOAD else f"0 0 {origin}")
    return out


def parse_payload(payload: str) -> tuple[str, TaskChange | None] | None:
    """(origin, change) of a payload; change None when the task id did not fit;
    None for a payload this build cannot read."""
    parts = payload.split(" ", 3)
    try:
        version, seq = int(parts[0]), int(parts[1])
        origin = parts[2]
    except (ValueError, IndexError):
        return None
    if len(parts) < 4:
        return origin, None
    return origin, TaskChange(task_id=parts[3], version=version, seq=seq)


class PgChangeFeed:
    """Reports the commits of other processes (other `origin`s); see the module docstring."""

    def __init__(self, pool: PgPool, origin: str, *, backoff: tuple[float, float],
                 rng: random.Random, ping_interval: float = 10.0,
                 ping_timeout: float = 5.0) -> None:
        self._pool = pool
        self._origin = origin
        self._backoff = backoff
        self._rng = rng
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self.connects = 0
        self.received = 0
        """Notifications of other processes' writes."""

    async def run(self, listener: ChangeListener, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; started once listening, or after a first failed try
        (the server then runs on, and the feed keeps trying)."""
        delay, ceiling = self._backoff
        down_since: float | None = None
        while True:
            conn: PgConnection | None = None
            try:
                conn = await self._pool.connect()
                await conn.script(f"LISTEN {CHANNEL}")
                self.connects += 1
                if down_since is not None:
                    logger.info("change feed of %s listening again after %.1f s",
                                self._pool.url, trio.current_time() - down_since)
                down_since = None
                delay = self._backoff[0]
                listener.resync()  # what was sent while nobody listened is gone
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                await self._follow(conn, listener)
            except (*CONNECT_ERRORS, *LOST) as exc:
                if down_since is None:
                    down_since = trio.current_time()
                    logger.warning(
                        "change feed of %s lost (%s); other replicas' writes are found by "
                        "polling until it is back; reconnecting with backoff", self._pool.url,
                        " ".join(str(exc).split()) or type(exc).__name__)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
            finally:
                if conn is not None:
                    conn.close()
            # "Equal jitter", as the pool's reconnects (postgres_pool).
            await trio.sleep(delay / 2 + self._rng.uniform(0, delay / 2))
            delay = min(delay * 2, ceiling)

    async def _follow(self, conn: PgConnection, listener: ChangeListener) -> None:
        """Pass notifications on until the connection is lost (raises one of LOST)."""
        while True:
            notes: list[tuple[str, str]] | None = None
            with trio.move_on_after(self._ping_interval):
                notes = await conn.wait_notifies()
            if notes is None:  # idle: is the connection still there?
                with trio.fail_after(self._ping_timeout):
                    await conn.execute("SELECT 1")
                continue
            for channel, payload in notes:
                if channel != CHANNEL:
                    continue
                parsed = parse_payload(payload)
                if parsed is None:
                    logger.warning("unreadable change notification %r; resyncing", payload)
                    listener.resync()
                    continue
                origin, change = parsed
                if origin == self._origin:
                    continue
                self.received += 1
                if change is None:
                    listener.resync()
                else:
                    listener.changed(change)
