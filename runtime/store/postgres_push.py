"""The PostgreSQL backend's push configs: storage, delivery progress and delivery claims.

A mixin of `PostgresBackend`, which supplies `_call` (a statement on a pooled
connection, run once more on a fresh one if the connection was lost) and `origin`.
Each statement here is one autocommitted statement, so it is atomic on its own
and safe to run again: a claim and a renewal are conditional UPDATEs (under READ
COMMITTED a racing one waits for the row lock and re-checks its WHERE on the new
row, so exactly one claim of an expired or free config wins), and progress under a
token changes nothing once that token no longer holds the config.

Releasing claims on a graceful stop (`hand_over`) also notifies the other replicas,
in the same statement, as a change of each released config's task (`postgres_feed`'s
payload, with the task's current version): their push delivery looks for claimable
configs of changed tasks, so a replica that stops hands its configs over at once
instead of at their expiry. A config done with is released quietly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from actors.store_port import PushClaim, PushConfigRecord
from protocol.states import TERMINAL_STATES
from runtime.store import postgres_feed as feed
from runtime.store import postgres_sql as sql
from runtime.store.postgres_driver import PgConnection

__all__ = ["PostgresPushConfigs"]


_TERMINAL = sql.text_array(s.value for s in TERMINAL_STATES)
_CLAIM = (
    "UPDATE push_configs SET claim_owner = $1, claim_token = $2, claim_expires = $3::float8"
    " WHERE task_id = $4 AND config_id = $5"
    " AND (claim_owner IS NULL OR claim_expires < $6::float8) RETURNING created"
)
_KEYS = "unnest($1::text[], $2::text[], $3::text[]) AS c(task_id, config_id, token)"
_RENEW = (
    f"UPDATE push_configs AS p SET claim_expires = $4::float8 FROM {_KEYS}"
    " WHERE p.task_id = c.task_id AND p.config_id = c.config_id AND p.claim_token = c.token"
    " RETURNING p.task_id, p.config_id, p.claim_owner, p.claim_token"
)
# One statement: the released rows' tasks are notified only if the release commits.
_RELEASE = (
    "WITH released AS ("
    " UPDATE push_configs AS p SET claim_owner = NULL, claim_token = NULL,"
    f" claim_expires = NULL FROM {_KEYS}"
    " WHERE p.task_id = c.task_id AND p.config_id = c.config_id AND p.claim_token = c.token"
    " RETURNING p.task_id)"
    f" SELECT pg_notify('{feed.CHANNEL}', CASE WHEN octet_length(n.payload) <= {feed.MAX_PAYLOAD}"
    " THEN n.payload ELSE '0 0 ' || $4::text END)"
    " FROM (SELECT t.version || ' ' || t.seq || ' ' || $4::text || ' ' || t.task_id AS payload"
    " FROM tasks AS t WHERE t.task_id IN (SELECT task_id FROM released)) AS n"
)
_RELEASE_QUIETLY = (
    "UPDATE push_configs AS p SET claim_owner = NULL, claim_token = NULL, claim_expires = NULL"
    f" FROM {_KEYS} WHERE p.task_id = c.task_id AND p.config_id = c.config_id"
    " AND p.claim_token = c.token"
)
_RELEASE_ALL = (
    "UPDATE push_configs SET claim_owner = NULL, claim_token = NULL, claim_expires = NULL"
    " WHERE claim_owner IS NOT NULL AND ($1::text IS NULL OR claim_owner = $1)"
)
_GET_CLAIM = (
    "SELECT claim_owner, claim_token, claim_expires FROM push_configs"
    " WHERE task_id = $1 AND config_id = $2 AND claim_owner IS NOT NULL"
)
_CLAIMABLE = (
    "SELECT p.config_json, p.owner, p.delivered_seq FROM push_configs AS p"
    " JOIN tasks AS t ON t.task_id = p.task_id"
    " WHERE (p.claim_owner IS NULL OR p.claim_expires < $1::float8)"
    " AND (t.state <> ALL($2::text[]) OR p.delivered_seq < t.seq)"
)
# Two statements, not one with "$3 IS NULL OR ...": a prepared statement's generic plan
# could not use the (task_id, config_id) index for the tasks a change batch names.
_CLAIMABLE_ALL = _CLAIMABLE + " ORDER BY p.created LIMIT $3::bigint"
_CLAIMABLE_OF = (_CLAIMABLE + " AND p.task_id = ANY($3::text[])"
                 " ORDER BY p.created LIMIT $4::bigint")
CHUNK = 1000
"""Claims per renewal or release statement."""


def _keys(claims: Sequence[PushClaim]) -> tuple[str, str, str]:
    return (sql.text_array(c.task_id for c in claims),
            sql.text_array(c.config_id for c in claims),
            sql.text_array(c.token for c in claims))


class PostgresPushConfigs:
    """Push config methods of `PostgresBackend` (see the module docstring)."""

    origin: str

    _call: Callable[[Callable[[PgConnection], Awaitable[Any]]], Awaitable[Any]]
    """`PostgresBackend._call`: run `fn` on a pooled connection."""

    # --- configs and progress -------------------------------------------------------

    async def put_push_config(self, record: PushConfigRecord) -> None:
        """Insert or replace; a replaced config keeps its place in creation order (and
        its claim)."""
        params = sql.push_params(record)
        await self._call(lambda conn: conn.execute(sql.UPSERT_PUSH, params))

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """True if it existed."""
        res = await self._call(lambda conn: conn.execute(sql.DELETE_PUSH, (task_id, config_id)))
        return res.rowcount > 0

    async def set_push_delivered(self, task_id: str, config_id: str, seq: int, *,
                                 token: str | None = None) -> bool:
        """Record delivery progress; never moves it backwards, ignores unknown configs;
        with `token`, only while that claim holds the config."""
        res = await self._call(lambda conn: conn.execute(
            sql.SET_DELIVERED + " AND ($4::text IS NULL OR claim_token = $4)",
            (seq, task_id, config_id, token)))
        return res.rowcount == 1

    async def get_push_config(self, task_id: str, config_id: str) -> PushConfigRecord | None:
        res = await self._call(lambda conn: conn.execute(sql.GET_PUSH, (task_id, config_id)))
        return sql.push_row(res.rows[0]) if res.rows else None

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        """Configs of one task, in creation order."""
        res = await self._call(lambda conn: conn.execute(sql.LIST_PUSH, (task_id,)))
        return [sql.push_row(row) for row in res.rows]

    async def list_pending_push(self) -> list[PushConfigRecord]:
        """Configs whose delivered_seq is behind their task's seq."""
        res = await self._call(lambda conn: conn.execute(sql.LIST_PENDING_PUSH))
        return [sql.push_row(row) for row in res.rows]

    # --- delivery claims ------------------------------------------------------------

    async def claim_push_config(self, task_id: str, config_id: str, *, owner: str,
                                token: str, now: float, expires_at: float
                                ) -> PushClaim | None:
        """Take the config if nobody holds it or its claim expired before `now`."""
        params = (owner, token, expires_at, task_id, config_id, now)
        res = await self._call(lambda conn: conn.execute(_CLAIM, params))
        if not res.rows:
            return None
        return PushClaim(task_id=task_id, config_id=config_id, owner=owner, token=token,
                         expires_at=expires_at)

    async def renew_push_claims(self, claims: Sequence[PushClaim], expires_at: float
                                ) -> list[PushClaim]:
        """Extend the claims whose token still holds their config; those, renewed."""
        renewed: list[PushClaim] = []
        for start in range(0, len(claims), CHUNK):
            params = (*_keys(claims[start:start + CHUNK]), expires_at)
            res = await self._call(lambda conn, p=params: conn.execute(_RENEW, p))
            renewed.extend(PushClaim(task_id=str(t), config_id=str(c), owner=str(o),
                                     token=str(k), expires_at=expires_at)
                           for t, c, o, k in res.rows)
        return renewed

    async def release_push_claims(self, claims: Sequence[PushClaim], *,
                                  hand_over: bool = False) -> None:
        """Give up the claims whose token still holds (idempotent); with `hand_over`,
        telling the other replicas in the same statement."""
        for start in range(0, len(claims), CHUNK):
            keys = _keys(claims[start:start + CHUNK])
            if hand_over:
                params: tuple[str, ...] = (*keys, self.origin)
                await self._call(lambda conn, p=params: conn.execute(_RELEASE, p))
            else:
                await self._call(lambda conn, p=keys: conn.execute(_RELEASE_QUIETLY, p))

    async def release_push_claims_of(self, owner: str | None) -> int:
        """Give up every claim of `owner` (None: every claim); how many."""
        res = await self._call(lambda conn: conn.execute(_RELEASE_ALL, (owner,)))
        return res.rowcount

    async def get_push_claim(self, task_id: str, config_id: str) -> PushClaim | None:
        res = await self._call(lambda conn: conn.execute(_GET_CLAIM, (task_id, config_id)))
        if not res.rows:
            return None
        owner, token, expires = res.rows[0]
        return PushClaim(task_id=task_id, config_id=config_id, owner=str(owner),
                         token=str(token), expires_at=float(str(expires)))

    async def list_claimable_push(self, now: float, *, task_ids: Sequence[str] | None = None,
                                  limit: int = 1000) -> list[PushConfigRecord]:
        """Unheld (or expired) configs that may have more to deliver, oldest first."""
        if task_ids is None:
            res = await self._call(lambda conn: conn.execute(
                _CLAIMABLE_ALL, (now, _TERMINAL, limit)))
        else:
            ids = sql.text_array(task_ids)
            res = await self._call(lambda conn: conn.execute(
                _CLAIMABLE_OF, (now, _TERMINAL, ids, limit)))
        return [sql.push_row(row) for row in res.rows]
