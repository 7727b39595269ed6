"""Where the token service keeps what it has revoked and which refresh tokens were used:
in memory, or durably in the SQLite file of the task store (its own table beside the
store's, so revocations survive a restart).

Every check is answered from memory (loaded at open, written through on change), so a
request costs no database read. With one process per database that is exact; a
PostgreSQL implementation, read by every replica, is what makes revocations hold on all
replicas (docs/security.md).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

__all__ = ["Revocations", "open_revocations"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_revocations (
    kind TEXT NOT NULL,          -- 'family' (revoked) or 'used' (a spent refresh token)
    id TEXT NOT NULL,
    expires_at REAL NOT NULL,    -- when the record stops mattering (the token's expiry)
    PRIMARY KEY (kind, id)
)
"""


class Revocations:
    """Revoked token families and spent refresh tokens."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self._conn = conn
        self._lock = trio.Lock()
        self._records: dict[tuple[str, str], float] = {}
        if conn is not None:
            now = time.time()
            conn.execute("DELETE FROM token_revocations WHERE expires_at < ?", (now,))
            conn.commit()
            for kind, id_, exp in conn.execute(
                    "SELECT kind, id, expires_at FROM token_revocations"):
                self._records[(kind, id_)] = exp

    def is_revoked(self, family: str) -> bool:
        return ("family", family) in self._records

    async def revoke(self, family: str, expires_at: float) -> None:
        await self._put("family", family, expires_at)

    async def spend(self, jti: str, expires_at: float) -> bool:
        """Mark a refresh token used; False if it had been used before (a replay)."""
        async with self._lock:
            if ("used", jti) in self._records:
                return False
            await self._put_locked("used", jti, expires_at)
            return True

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
async def open_revocations(sqlite_file: Path | None) -> AsyncIterator[Revocations]:
    """Revocations kept in `sqlite_file` (the task store's file), or in memory (None)."""
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
