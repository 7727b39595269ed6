"""What the security model keeps in PostgreSQL beside the tasks, so that it holds on
every replica of one database: the token service's revocations and spent refresh
tokens (`token_revocations`), and the request-signing nonces seen (`request_nonces`).

Each operation is one autocommitted statement on the backend's pool, atomic on its
own: a refresh token is spent, and a nonce used, by an INSERT that only one replica's
can win. Such an insert is run again on a fresh connection if the first was lost
mid-statement; had the first landed, the second reports a replay: the caller is
refused (a refresh that revokes its family, a signed request answered 401), never
let through twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runtime.store.postgres_driver import PgConnection

__all__ = ["PostgresSecurityState"]

T = TypeVar("T")

_PUT = ("INSERT INTO token_revocations (kind, id, expires_at) VALUES ($1, $2, $3::float8)"
        " ON CONFLICT (kind, id) DO UPDATE SET expires_at ="
        " GREATEST(token_revocations.expires_at, EXCLUDED.expires_at)")
_ADD_NEW = ("INSERT INTO token_revocations (kind, id, expires_at) VALUES ($1, $2, $3::float8)"
            " ON CONFLICT (kind, id) DO NOTHING RETURNING 1")
_HAS = "SELECT expires_at FROM token_revocations WHERE kind = $1 AND id = $2"
_PRUNE_REVOCATIONS = "DELETE FROM token_revocations WHERE expires_at < $1::float8"
# A nonce is new, or seen so long ago (before `$4`) that its request could not be
# within the window any more: either way this use is the first that counts.
_NONCE = ("INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES ($1, $2, $3::float8)"
          " ON CONFLICT (key_id, nonce) DO UPDATE SET seen_at = EXCLUDED.seen_at"
          " WHERE request_nonces.seen_at < $4::float8 RETURNING 1")
_PRUNE_NONCES = "DELETE FROM request_nonces WHERE seen_at < $1::float8"


class PostgresSecurityState:
    """Revocations and nonces over a `PostgresBackend` (its pool and its retry rule)."""

    def __init__(self, backend: Any) -> None:
        self._call: Callable[[Callable[[PgConnection], Awaitable[Any]]], Awaitable[Any]] = (
            backend._call)

    # --- the token service (runtime.http.revocations.SharedRevocations) ---------------

    async def put(self, kind: str, id_: str, expires_at: float) -> None:
        await self._call(lambda conn: conn.execute(_PUT, (kind, id_, expires_at)))

    async def add_new(self, kind: str, id_: str, expires_at: float) -> bool:
        """Record it unless it is there already; False if it was (a replay)."""
        res = await self._call(lambda conn: conn.execute(_ADD_NEW, (kind, id_, expires_at)))
        return bool(res.rows)

    async def expiry(self, kind: str, id_: str) -> float | None:
        """When the record stops mattering; None if there is none."""
        res = await self._call(lambda conn: conn.execute(_HAS, (kind, id_)))
        return float(res.rows[0][0]) if res.rows else None

    async def prune(self, now: float) -> int:
        """Drop the records of tokens expired by `now`; how many."""
        res = await self._call(lambda conn: conn.execute(_PRUNE_REVOCATIONS, (now,)))
        return int(res.rowcount)

    # --- request signing (runtime.http.request_signing.SharedNonces) ------------------

    async def first_use(self, key_id: str, nonce: str, now: float, keep: float) -> bool:
        """Record a nonce at `now`; False if it was seen within `keep` seconds."""
        res = await self._call(lambda conn: conn.execute(
            _NONCE, (key_id, nonce, now, now - keep)))
        return bool(res.rows)

    async def prune_nonces(self, before: float) -> int:
        res = await self._call(lambda conn: conn.execute(_PRUNE_NONCES, (before,)))
        return int(res.rowcount)
