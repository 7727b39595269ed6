"""The request-signing nonces seen, kept in the SQLite task store's file
(`request_nonces`, schema v5), so a signed request replayed after a restart of the
server, within its window, is refused as a replay.

Each operation is one autocommitted statement on the store's writer connection, run in
its worker thread under its limiter (`SQLiteBackend._write`), never on the trio loop.
A nonce is used by an INSERT that only the first can win; a failure to write is raised
(the caller answers 503, never lets the request through unchecked). The token service's
revocations live in the same file (`runtime.http.revocations`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from actors.store_port import BackendUnavailableError

__all__ = ["SQLiteNonces"]

# A nonce is new, or seen so long ago (before the 4th parameter) that its request could
# not be within the window any more: either way this use is the first that counts.
_NONCE = ("INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?, ?, ?)"
          " ON CONFLICT (key_id, nonce) DO UPDATE SET seen_at = excluded.seen_at"
          " WHERE request_nonces.seen_at < ?")
_PRUNE = "DELETE FROM request_nonces WHERE seen_at < ?"


class SQLiteNonces:
    """`runtime.http.request_signing.SharedNonces` over a `SQLiteBackend`."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    async def first_use(self, key_id: str, nonce: str, now: float, keep: float) -> bool:
        """Record a nonce at `now`; False if it was seen within `keep` seconds."""

        def run(conn: sqlite3.Connection) -> bool:
            return conn.execute(_NONCE, (key_id, nonce, now, now - keep)).rowcount == 1

        return await self._write(run)

    async def prune_nonces(self, before: float) -> int:
        """Drop the nonces seen before `before`; how many."""
        return await self._write(lambda conn: conn.execute(_PRUNE, (before,)).rowcount)

    async def _write(self, fn: Any) -> Any:
        try:
            return await self._backend._write(fn)
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"the SQLite store cannot record a request "
                                          f"nonce: {exc}") from exc
