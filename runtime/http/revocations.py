"""Where the token service keeps what it has revoked and which refresh tokens were used:
in memory, durably in the SQLite file of the task store (its own table beside the
store's, so revocations survive a restart), or in the PostgreSQL database the replicas
share (`SharedRevocations`, implemented by `runtime.store.postgres_security`).

With memory or SQLite (one process per database) every check is answered from memory,
loaded at open and written through on change. With a shared database a family revoked on
one replica must be refused on all at once, so a family not known here to be revoked is
looked up (one primary-key read per request with a token-service token), a refresh token
is spent by an insert only one replica can win, and what is found revoked is remembered.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import trio

__all__ = ["Revocations", "SharedRevocations", "open_revocations"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_revocations (
    kind TEXT NOT NULL,          -- 'family' (revoked) or 'used' (a spent refresh token)
    id TEXT NOT NULL,
    expires_at REAL NOT NULL,    -- when the record stops mattering (the token's expiry)
    PRIMARY KEY (kind, id)
)
"""
PRUNE_EVERY = 256
"""Writes to a shared table between two deletions of expired records."""


class SharedRevocations(Protocol):
    """The revocation records in a database every replica reads."""

    async def put(self, kind: str, id_: str, expires_at: float) -> None: ...

    async def add_new(self, kind: str, id_: str, expires_at: float) -> bool:
        """Record it unless it is there; False if it was."""
        ...

    async def expiry(self, kind: str, id_: str) -> float | None: ...

    async def prune(self, now: float) -> int: ...


class Revocations:
    """Revoked token families and spent refresh tokens."""

    def __init__(self, conn: sqlite3.Connection | None = None, *,
                 shared: SharedRevocations | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._shared = shared
        self._clock = clock
        self._writes = 0
        self._lock = trio.Lock()
        self._records: dict[tuple[str, str], float] = {}
        if conn is not None:
            now = clock()
            conn.execute("DELETE FROM token_revocations WHERE expires_at < ?", (now,))
            conn.commit()
            for kind, id_, exp in conn.execute(
                    "SELECT kind, id, expires_at FROM token_revocations"):
                self._records[(kind, id_)] = exp

    async def is_revoked(self, family: str) -> bool:
        if ("family", family) in self._records:
            return True
        if self._shared is None:
            return False
        expiry = await self._shared.expiry("family", family)
        if expiry is None:
            return False
        self._records[("family", family)] = expiry  # revocation is for good: remember it
        return True

    async def revoke(self, family: str, expires_at: float) -> None:
        if self._shared is not None:
            await self._shared.put("family", family, expires_at)
            await self._pruned()
        await self._put("family", family, expires_at)

    async def spend(self, jti: str, expires_at: float) -> bool:
        """Mark a refresh token used; False if it had been used before (a replay)."""
        if self._shared is not None:
            first = await self._shared.add_new("used", jti, expires_at)
            await self._pruned()
            return first
        async with self._lock:
            if ("used", jti) in self._records:
                return False
            await self._put_locked("used", jti, expires_at)
            return True

    async def _pruned(self) -> None:
        self._writes += 1
        if self._shared is not None and self._writes % PRUNE_EVERY == 0:
            now = self._clock()
            await self._shared.prune(now)
            self._records = {k: exp for k, exp in self._records.items() if exp >= now}

    async def _put(self, kind: str, id_: str, expires_at: float) -> None:
        async with self._lock:
            await self._put_locked(kind, id_, expires_at)

    async def _put_locked(self, kind: str, id_: str, expires_at: float) -> None:
        self._records[(kind, id_)] = max(expires_at, self._records.get((kind, id_), 0.0))
        conn = self._conn
        if conn is None:
            return

        def write() -> None:
            conn.execute("INSERT OR REPLACE INTO token_revocations VALUES (?, ?, ?)",
                         (kind, id_, self._records[(kind, id_)]))
            conn.commit()

        await trio.to_thread.run_sync(write)


@asynccontextmanager
async def open_revocations(sqlite_file: Path | None, *,
                           shared: SharedRevocations | None = None
                           ) -> AsyncIterator[Revocations]:
    """Revocations kept in `shared` (a database of every replica), in `sqlite_file` (the
    task store's file), or in memory (neither)."""
    if shared is not None:
        await shared.prune(time.time())
        yield Revocations(shared=shared)
        return
    if sqlite_file is None:
        yield Revocations()
        return

    def connect() -> sqlite3.Connection:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(sqlite_file), check_same_thread=False, timeout=5.0)
        conn.execute(_SCHEMA)
        conn.commit()
        return conn

    conn = await trio.to_thread.run_sync(connect)
    try:
        yield await trio.to_thread.run_sync(Revocations, conn)
    finally:
        conn.close()
