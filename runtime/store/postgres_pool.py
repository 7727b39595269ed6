"""A bounded pool of `PgConnection`s that survives losing the database.

Idle connections are checked without blocking before reuse (a connection the
server terminated while it sat idle is dropped, not handed out). A call that
needs a new connection and cannot get one starts an **outage**: one warning is
logged, calls fail fast with `StoreUnavailableError` instead of each waiting
out a connect timeout, and `run()` retries in the background with exponential
backoff and jitter (from an injected `random.Random`, on trio's clock) until
the database answers again, then logs one info line. `healthy` and
`statistics()` say which state the pool is in, for readiness.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import trio

from runtime.store.errors import StoreOpenError
from runtime.store.postgres_driver import PgConnection, display_url

__all__ = ["PgPool", "StoreUnavailableError", "postgres_open_error"]

logger = logging.getLogger(__name__)

CONNECT_ERRORS = (psycopg.OperationalError, OSError, trio.TooSlowError)


class StoreUnavailableError(ConnectionError):
    """The task store's database cannot be reached right now; it is being retried."""


def _reason(exc: BaseException) -> str:
    """libpq's message on one line ("connection failed: ... Connection refused")."""
    if isinstance(exc, trio.TooSlowError):
        return "no answer in time"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def postgres_open_error(conninfo: str, exc: BaseException) -> StoreOpenError:
    """Explain, on one line without the password, why the database could not be opened."""
    url = display_url(conninfo)
    reason = _reason(exc)
    prefix = f"cannot open the task store {url}: {reason}"
    if isinstance(exc, RuntimeError):  # a schema newer than this build
        return StoreOpenError(prefix)
    if re.search(r'database ".*" does not exist', reason):
        todo = "create the database (createdb) or fix --database-url"
    elif "authentication" in reason or "password" in reason:
        todo = "check the user and password in --database-url (or PGPASSWORD / ~/.pgpass)"
    elif "permission denied" in reason:
        todo = ("grant this user CREATE on the database, or run `python -m runtime migrate` "
                "as its owner")
    else:
        todo = ("check that PostgreSQL is running there and accepts connections, or fix "
                "--database-url / TRIO_A2A_DATABASE_URL")
    return StoreOpenError(f"{prefix}; {todo}")


class PgPool:
    """Up to `size` connections to one database; see the module docstring."""

    def __init__(
        self,
        conninfo: str,
        size: int,
        *,
        connect_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        rng: random.Random | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.url = display_url(conninfo)
        self._conninfo = conninfo
        self._idle: list[PgConnection] = []
        self._limiter = trio.CapacityLimiter(size)
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._down_since: float | None = None
        self._outage = trio.Event()
        self._closed = False
        self.outages = 0
        self.replaced = 0

    @property
    def healthy(self) -> bool:
        """False from a failed connect until the background retry gets through."""
        return self._down_since is None

    async def connect(self) -> PgConnection:
        """A new connection, within the connect timeout."""
        with trio.fail_after(self._connect_timeout):
            return await PgConnection.connect(self._conninfo)

    def adopt(self, conn: PgConnection) -> None:
        """Take an open connection into the idle set (the one start-up migrated on)."""
        self._put(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PgConnection]:
        """Borrow a connection for one call; it returns to the pool if still usable."""
        self.check_open()
        async with self._limiter:
            conn = await self._take()
            try:
                yield conn
            finally:
                self._put(conn)

    async def _take(self) -> PgConnection:
        while self._idle:
            conn = self._idle.pop()
            if conn.poll_alive():
                await trio.lowlevel.checkpoint()
                return conn
            self.replaced += 1
            logger.debug("dropped a lost connection to %s", self.url)
        if self._down_since is not None:
            await trio.lowlevel.checkpoint()
            raise StoreUnavailableError(f"the task store {self.url} is unreachable; retrying")
        try:
            return await self.connect()
        except CONNECT_ERRORS as exc:
            self._mark_down(exc)
            raise StoreUnavailableError(
                f"the task store {self.url} is unreachable ({_reason(exc)}); retrying") from exc

    def _put(self, conn: PgConnection) -> None:
        if self._closed or conn.broken or not conn.idle:
            conn.close()
        else:
            self._idle.append(conn)

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = trio.current_time()
        self.outages += 1
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        logger.warning(
            "lost the task store database %s (%s); serving what is in memory, reconnecting "
            "with backoff", self.url, _reason(exc))
        self._outage.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconnect after each outage until cancelled (runs for the pool's lifetime)."""
        task_status.started()
        while True:
            await self._outage.wait()
            await self._reconnect()
            self._outage = trio.Event()

    async def _reconnect(self) -> None:
        delay, ceiling = self._backoff
        while True:
            # "Equal jitter": at least half the delay, so retries never bunch up at zero.
            await trio.sleep(delay / 2 + self._rng.uniform(0, delay / 2))
            try:
                conn = await self.connect()
            except CONNECT_ERRORS as exc:
                logger.debug("task store %s still unreachable: %s", self.url, _reason(exc))
                delay = min(delay * 2, ceiling)
                continue
            assert self._down_since is not None
            down_for = trio.current_time() - self._down_since
            self._down_since = None
            self._put(conn)
            logger.info("reconnected to the task store database %s after %.1f s",
                        self.url, down_for)
            return

    def check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("task backend is closed")

    async def aclose(self) -> None:
        """Close idle connections now and borrowed ones as they come back."""
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> dict[str, int]:
        """Connections idle and borrowed, calls waiting, health, outages so far."""
        limiter = self._limiter.statistics()
        return {
            "idle": len(self._idle),
            "borrowed": limiter.borrowed_tokens,
            "waiting": limiter.tasks_waiting,
            "healthy": int(self.healthy),
            "outages": self.outages,
            "replaced_connections": self.replaced,
        }
