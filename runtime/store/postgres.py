"""PostgreSQL `TaskBackend`: the store several server replicas can share.

The same tables and semantics as the SQLite backend (runtime/store/sqlite.py):
a `commit(writes)` batch is one transaction; a write whose expected version does
not hold (`UPDATE ... WHERE task_id = $ AND version = $`, `INSERT ... ON
CONFLICT DO NOTHING`) raises `ConflictError` and stores nothing from the batch.
Under READ COMMITTED a replica racing on the same row waits for the other's
commit and then finds the version moved on, so compare-and-set holds across
processes without stronger isolation, for writes without events (a claim) too.

The backend is also a `ChangeFeed` (postgres_feed): each commit notifies the
other replicas in its own transaction, and `run_change_feed` listens for theirs.

Queries run on trio's own I/O waits through psycopg's generator protocol
(postgres_driver), from a bounded pool that survives losing the database
(postgres_pool). A call whose connection turns out to be lost is run once more
on a fresh one. For a commit that is safe because of the version check: if the
connection died after COMMIT was sent, the retry either applies the batch or
conflicts, and a conflict is then checked against what is stored (the batch may
have landed after all).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actors.store_port import (
    ChangeListener,
    ConflictError,
    StoredEvent,
    TaskChange,
    TaskPage,
    TaskQuery,
    TaskRecord,
    TaskWrite,
)
from runtime.store import postgres_feed as feed
from runtime.store import postgres_sql as sql
from runtime.store.memory import UNFINISHED_STATES, check_write
from runtime.store.postgres_driver import PgConnection, display_url
from runtime.store.postgres_pool import (
    CONNECT_ERRORS,
    PgPool,
    StoreUnavailableError,
    postgres_open_error,
)
from runtime.store.postgres_push import PostgresPushConfigs
from runtime.store.postgres_schema import SCHEMA_VERSION, apply_migrations, check_schema

__all__ = ["PostgresBackend", "StoreUnavailableError", "migrate", "open_postgres_backend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOST = (psycopg.Error, OSError)
"""What a call on a connection that died raises (the connection is then `broken`)."""
_UNFINISHED = sql.text_array(s.value for s in UNFINISHED_STATES)


class PostgresBackend(PostgresPushConfigs):
    """`TaskBackend` and `ChangeFeed` on a PostgreSQL database. Build it with
    `open_postgres_backend`. Push configs and their delivery claims:
    `runtime.store.postgres_push`."""

    def __init__(self, pool: PgPool, *, backoff: tuple[float, float] = (0.5, 30.0),
                 rng: random.Random | None = None) -> None:
        self._pool = pool
        self._backoff = backoff
        self._rng = rng or random.Random()
        self.origin = uuid.uuid4().hex[:16]
        """Names this backend's commits in change notifications, so its own are skipped."""

    @property
    def url(self) -> str:
        """The database URL without its password."""
        return self._pool.url

    @property
    def healthy(self) -> bool:
        """False while the database is unreachable (calls then fail fast); for readiness."""
        return self._pool.healthy

    def statistics(self) -> dict[str, int]:
        """Pool use, health and outages; see `PgPool.statistics`."""
        return self._pool.statistics()

    async def _call(self, fn: Callable[[PgConnection], Awaitable[T]]) -> T:
        """Run `fn` on a pooled connection, once more on a fresh one if it was lost.

        Only for reads and single idempotent statements (a delete retried after it
        landed reports False): commits go through `commit`.
        """
        lost: BaseException | None = None
        for _ in range(2):
            async with self._pool.connection() as conn:
                try:
                    return await fn(conn)
                except LOST as exc:
                    if not conn.broken:
                        raise
                    lost = exc
            self._pool.replaced += 1
            logger.debug("connection to %s lost mid-call (%s); retrying once", self.url, lost)
        raise StoreUnavailableError(f"lost the connection to the task store {self.url}") from lost

    # --- writes -------------------------------------------------------------------

    async def commit(self, writes: Sequence[TaskWrite]) -> None:
        """Persist a batch in one transaction; `ConflictError` (nothing stored) on a mismatch."""
        for write in writes:
            check_write(write)
        if not writes:
            return
        lost: BaseException | None = None
        ambiguous = False  # a COMMIT was sent on a connection that then died
        for _ in range(2):
            sent = [False]
            async with self._pool.connection() as conn:
                try:
                    await _commit(conn, writes, sent, self.origin)
                    return
                except ConflictError:
                    if ambiguous and await _landed(conn, writes):
                        return
                    raise
                except LOST as exc:
                    if not conn.broken:
                        raise
                    lost = exc
                    ambiguous = ambiguous or sent[0]
            self._pool.replaced += 1
            logger.debug("connection to %s lost in a commit (%s); retrying once", self.url, lost)
        raise StoreUnavailableError(f"lost the connection to the task store {self.url}") from lost

    # --- reads --------------------------------------------------------------------

    async def get_task(self, task_id: str) -> TaskRecord | None:
        res = await self._call(lambda conn: conn.execute(sql.GET_TASK, (task_id,)))
        return sql.task_row(res.rows[0]) if res.rows else None

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Tasks matching `query`, newest `status_at` first (ties: task id descending).

        `status_after` is inclusive (status_at >= it), as in the a2a-sdk stores.
        """
        if query.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {query.page_size}")
        statement, params = sql.list_tasks_sql(query)
        res = await self._call(lambda conn: conn.execute(statement, params))
        total = int(res.rows[0][0] or 0)
        rows = [row[1:-1] for row in res.rows if row[1] is not None]
        more = len(rows) > query.page_size
        records = [sql.task_row(row) for row in rows[: query.page_size]]
        next_cursor = (records[-1].status_at, records[-1].task_id) if more else None
        return TaskPage(records=records, next_cursor=next_cursor, total_size=total)

    async def read_events(self, task_id: str, after_seq: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` events with seq > after_seq, ascending."""
        if limit <= 0:
            self._pool.check_open()
            await trio.lowlevel.checkpoint()
            return []
        res = await self._call(
            lambda conn: conn.execute(sql.READ_EVENTS, (task_id, after_seq, limit)))
        return [sql.event_row(task_id, row) for row in res.rows]

    async def list_unfinished(self) -> list[TaskRecord]:
        """Submitted or working tasks, oldest status change first."""
        res = await self._call(lambda conn: conn.execute(sql.LIST_UNFINISHED, (_UNFINISHED,)))
        return [sql.task_row(row) for row in res.rows]

    # --- the change feed ------------------------------------------------------------

    async def run_change_feed(
        self, listener: ChangeListener, *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Report other replicas' commits to `listener` until cancelled (postgres_feed)."""
        follower = feed.PgChangeFeed(self._pool, self.origin, backoff=self._backoff,
                                     rng=self._rng)
        await follower.run(listener, task_status=task_status)

    async def task_versions(self, task_ids: Sequence[str]) -> list[TaskChange]:
        """Where each of these tasks stands (the ones that exist), in one statement."""
        if not task_ids:
            await trio.lowlevel.checkpoint()
            return []
        ids = sql.text_array(task_ids)
        res = await self._call(lambda conn: conn.execute(sql.TASK_VERSIONS, (ids,)))
        return [TaskChange(task_id=str(task_id), version=int(str(version)), seq=int(str(seq)))
                for task_id, version, seq in res.rows]

    # --- lifecycle ----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the pool; later calls raise `trio.ClosedResourceError`."""
        await self._pool.aclose()


async def _commit(conn: PgConnection, writes: Sequence[TaskWrite], sent: list[bool],
                  origin: str) -> None:
    """The batch in one transaction, notifying the other replicas of it (delivered only
    if it commits); `sent[0]` is set just before COMMIT goes out."""
    keys: list[str] = []
    seqs: list[int] = []
    bodies: list[str] = []
    await conn.script("BEGIN")
    try:
        for write in writes:
            params = sql.task_params(write.record)
            task_id = write.record.task_id
            if write.expected_seq is None:
                res = await conn.execute(sql.INSERT_TASK, params)
                if not res.rows:
                    raise ConflictError(f"task {task_id!r} already exists")
            else:
                res = await conn.execute(
                    sql.UPDATE_TASK, (*params, write.expected_version, write.expected_seq))
                if not res.rows:
                    raise ConflictError(f"task {task_id!r} is not at version "
                                        f"{write.expected_version} (seq {write.expected_seq})")
            key = str(res.rows[0][0])
            for event in write.events:
                keys.append(key)
                seqs.append(event.seq)
                bodies.append(sql.dump(event.event))
            for push in write.push_configs:
                await conn.execute(sql.UPSERT_PUSH, sql.push_params(push))
        if keys:
            arrays = (sql.text_array(keys), sql.text_array(seqs), sql.text_array(bodies))
            try:
                await conn.execute(sql.INSERT_EVENTS, arrays)
            except psycopg.errors.UniqueViolation as exc:
                raise ConflictError("event sequence number already stored") from exc
        await conn.execute(feed.NOTIFY, (sql.text_array(feed.payloads(origin, writes)),))
        sent[0] = True
        await conn.script("COMMIT")
    except BaseException:
        if not conn.broken:
            await conn.script("ROLLBACK")
        raise


async def _landed(conn: PgConnection, writes: Sequence[TaskWrite]) -> bool:
    """Whether every task of the batch is stored exactly as the batch leaves it."""
    final = {write.record.task_id: write.record for write in writes}
    res = await conn.execute(
        "SELECT task_id, version, seq, task_json, dispatch_json FROM tasks"
        " WHERE task_id = ANY($1::text[])", (sql.text_array(final),))
    stored = {row[0]: row[1:] for row in res.rows}
    return all(
        stored.get(task_id) == (str(r.version), str(r.seq), sql.dump(r.task),
                                sql.dispatch_json(r))
        for task_id, r in final.items()
    )


def _with_app_name(url: str) -> str:
    """Name the connections in pg_stat_activity unless the URL already does."""
    if conninfo_to_dict(url).get("application_name"):
        return url
    return make_conninfo(url, application_name="trio-a2a")


async def _connect(url: str, connect_timeout: float) -> PgConnection:
    try:
        with trio.fail_after(connect_timeout):
            return await PgConnection.connect(url)
    except (*CONNECT_ERRORS, psycopg.Error) as exc:
        raise postgres_open_error(url, exc) from None  # libpq's text is in the message


async def _open_connection(url: str, *, run_migrations: bool, connect_timeout: float,
                           ) -> PgConnection:
    """Connect and bring the schema up to date (or check it); StoreOpenError if not."""
    conn = await _connect(url, connect_timeout)
    try:
        if run_migrations:
            await apply_migrations(conn)
        else:
            await check_schema(conn)
    except (psycopg.Error, RuntimeError) as exc:
        conn.close()
        raise postgres_open_error(url, exc) from exc
    return conn


async def migrate(url: str, *, connect_timeout: float = 10.0) -> tuple[int, int]:
    """Apply the missing schema migrations to the database at `url`.

    Returns (version before, version after); raises `StoreOpenError` naming the
    URL (without its password) if the database cannot be reached or is newer.
    """
    url = _with_app_name(url)
    conn = await _connect(url, connect_timeout)
    try:
        return await apply_migrations(conn)
    except (psycopg.Error, RuntimeError) as exc:
        raise postgres_open_error(url, exc) from exc
    finally:
        conn.close()


@asynccontextmanager
async def open_postgres_backend(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout: float = 10.0,
    run_migrations: bool = True,
    backoff: tuple[float, float] = (0.5, 30.0),
    rng: random.Random | None = None,
) -> AsyncIterator[PostgresBackend]:
    """Connect to the database at `url` (a postgresql:// URL or libpq conninfo),
    apply missing migrations, and close the pool on exit.

    Raises `StoreOpenError` with one line naming the URL without its password, and
    what to do, if the database cannot be reached or its schema is not usable; this
    is the early error, with no retry. Once open, a lost database is retried in the
    background with `backoff` (first delay, ceiling; seconds, jittered by `rng`).
    `run_migrations=False` only checks that the schema is current (for deployments
    that run `python -m runtime migrate` as a separate step).
    """
    url = _with_app_name(url)
    conn = await _open_connection(url, run_migrations=run_migrations,
                                  connect_timeout=connect_timeout)
    rng = rng or random.Random()
    pool = PgPool(url, pool_size, connect_timeout=connect_timeout, backoff=backoff, rng=rng)
    pool.adopt(conn)
    backend = PostgresBackend(pool, backoff=backoff, rng=rng)
    logger.info("opened task store %s (schema v%d, pool of %d)",
                display_url(url), SCHEMA_VERSION, pool_size)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        try:
            yield backend
        finally:
            with trio.CancelScope(shield=True):
                await backend.aclose()
            nursery.cancel_scope.cancel()
