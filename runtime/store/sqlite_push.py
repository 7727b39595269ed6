"""The SQLite backend's push configs: storage, delivery progress and delivery claims.

A mixin of `SQLiteBackend`, which supplies `_read` and `_write` (each call runs on
one of its two connections in a worker thread). Claims live in three columns of the
config's row (`claim_owner`, `claim_token`, `claim_expires`): claiming is one
conditional UPDATE, and progress recorded under a token (`set_push_delivered`) is an
UPDATE that also names the token, so a replica that lost the claim changes nothing.
One process owns a SQLite file, so it holds every claim; the claims keep the same
rules as on PostgreSQL so that the backend test suite runs unchanged on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from actors.store_port import PushClaim, PushConfigRecord
from protocol.models import TaskPushNotificationConfig
from protocol.states import TERMINAL_STATES

__all__ = ["UPSERT_PUSH", "SQLitePushConfigs", "push_params"]


# A replaced config keeps its row, so its creation order and its claim.
UPSERT_PUSH = (
    "INSERT INTO push_configs (task_id, config_id, owner, delivered_seq, config_json)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, config_id) DO UPDATE SET"
    " owner = excluded.owner, delivered_seq = excluded.delivered_seq,"
    " config_json = excluded.config_json"
)
_PUSH_COLUMNS = "config_json, owner, delivered_seq"
_CLAIM_COLUMNS = "task_id, config_id, claim_owner, claim_token, claim_expires"
_TERMINAL = tuple(s.value for s in TERMINAL_STATES)
_CLAIMABLE = (
    f"SELECT p.{_PUSH_COLUMNS.replace(', ', ', p.')} FROM push_configs AS p"
    " JOIN tasks AS t ON t.task_id = p.task_id"
    " WHERE (p.claim_owner IS NULL OR p.claim_expires < ?)"
    f" AND (t.state NOT IN ({', '.join('?' * len(_TERMINAL))}) OR p.delivered_seq < t.seq)"
)


def _push_row(row: tuple[str, str, int]) -> PushConfigRecord:
    return PushConfigRecord(
        config=TaskPushNotificationConfig.model_validate_json(row[0]),
        owner=row[1],
        delivered_seq=row[2],
    )


def push_params(push: PushConfigRecord) -> tuple[str, str, str, int, str]:
    config = push.config.model_dump_json(by_alias=True, exclude_none=True)
    return (push.task_id, push.config_id, push.owner, push.delivered_seq, config)


class SQLitePushConfigs:
    """Push config methods of `SQLiteBackend` (see the module docstring)."""

    # `SQLiteBackend`'s: run `fn` on its writer / a reader connection, in a thread
    _write: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]

    # --- configs and progress -------------------------------------------------------

    async def put_push_config(self, record: PushConfigRecord) -> None:
        """Insert or replace; a replaced config keeps its place in creation order."""
        params = push_params(record)
        await self._write(lambda conn: conn.execute(UPSERT_PUSH, params))

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        """True if it existed."""
        cur = await self._write(lambda conn: conn.execute(
            "DELETE FROM push_configs WHERE task_id = ? AND config_id = ?", (task_id, config_id)))
        return bool(cur.rowcount > 0)

    async def set_push_delivered(self, task_id: str, config_id: str, seq: int, *,
                                 token: str | None = None) -> bool:
        """Record delivery progress; never moves it backwards, ignores unknown configs;
        with `token`, only while that claim holds the config."""
        fence = "" if token is None else " AND claim_token = ?"
        params: tuple[Any, ...] = (seq, task_id, config_id, *(() if token is None else (token,)))
        cur = await self._write(lambda conn: conn.execute(
            "UPDATE push_configs SET delivered_seq = MAX(delivered_seq, ?)"
            f" WHERE task_id = ? AND config_id = ?{fence}", params))
        return bool(cur.rowcount == 1)

    async def get_push_config(self, task_id: str, config_id: str) -> PushConfigRecord | None:
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {_PUSH_COLUMNS} FROM push_configs WHERE task_id = ? AND config_id = ?",
            (task_id, config_id)).fetchone())
        return None if row is None else _push_row(row)

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        """Configs of one task, in creation order."""
        rows = await self._read(lambda conn: conn.execute(
            f"SELECT {_PUSH_COLUMNS} FROM push_configs WHERE task_id = ? ORDER BY created",
            (task_id,)).fetchall())
        return [_push_row(row) for row in rows]

    async def list_pending_push(self) -> list[PushConfigRecord]:
        """Configs whose delivered_seq is behind their task's seq."""
        rows = await self._read(lambda conn: conn.execute(
            "SELECT p.config_json, p.owner, p.delivered_seq FROM push_configs AS p"
            " JOIN tasks AS t ON t.task_id = p.task_id"
            " WHERE p.delivered_seq < t.seq ORDER BY p.created").fetchall())
        return [_push_row(row) for row in rows]

    # --- delivery claims ------------------------------------------------------------

    async def claim_push_config(self, task_id: str, config_id: str, *, owner: str,
                                token: str, now: float, expires_at: float
                                ) -> PushClaim | None:
        """Take the config if nobody holds it or its claim expired before `now`."""
        cur = await self._write(lambda conn: conn.execute(
            "UPDATE push_configs SET claim_owner = ?, claim_token = ?, claim_expires = ?"
            " WHERE task_id = ? AND config_id = ?"
            " AND (claim_owner IS NULL OR claim_expires < ?)",
            (owner, token, expires_at, task_id, config_id, now)))
        if cur.rowcount != 1:
            return None
        return PushClaim(task_id=task_id, config_id=config_id, owner=owner, token=token,
                         expires_at=expires_at)

    async def renew_push_claims(self, claims: Sequence[PushClaim], expires_at: float
                                ) -> list[PushClaim]:
        """Extend the claims whose token still holds their config; those, renewed."""
        def run(conn: sqlite3.Connection) -> list[PushClaim]:
            renewed = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for c in claims:
                    if conn.execute(
                            "UPDATE push_configs SET claim_expires = ?"
                            " WHERE task_id = ? AND config_id = ? AND claim_token = ?",
                            (expires_at, c.task_id, c.config_id, c.token)).rowcount == 1:
                        renewed.append(PushClaim(task_id=c.task_id, config_id=c.config_id,
                                                 owner=c.owner, token=c.token,
                                                 expires_at=expires_at))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return renewed

        return await self._write(run) if claims else []

    async def release_push_claims(self, claims: Sequence[PushClaim], *,
                                  hand_over: bool = False) -> None:
        """Give up the claims whose token still holds; idempotent (one process: nobody
        to hand them over to)."""
        params = [(c.task_id, c.config_id, c.token) for c in claims]
        if params:
            await self._write(lambda conn: conn.executemany(
                "UPDATE push_configs SET claim_owner = NULL, claim_token = NULL,"
                " claim_expires = NULL WHERE task_id = ? AND config_id = ? AND claim_token = ?",
                params))

    async def release_push_claims_of(self, owner: str | None) -> int:
        """Give up every claim of `owner` (None: every claim); how many."""
        which = "claim_owner IS NOT NULL" if owner is None else "claim_owner = ?"
        cur = await self._write(lambda conn: conn.execute(
            "UPDATE push_configs SET claim_owner = NULL, claim_token = NULL,"
            f" claim_expires = NULL WHERE {which}", () if owner is None else (owner,)))
        return int(cur.rowcount)

    async def get_push_claim(self, task_id: str, config_id: str) -> PushClaim | None:
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {_CLAIM_COLUMNS} FROM push_configs WHERE task_id = ? AND config_id = ?"
            " AND claim_owner IS NOT NULL", (task_id, config_id)).fetchone())
        if row is None:
            return None
        return PushClaim(task_id=row[0], config_id=row[1], owner=row[2], token=row[3],
                         expires_at=row[4])

    async def list_claimable_push(self, now: float, *, task_ids: Sequence[str] | None = None,
                                  limit: int = 1000) -> list[PushConfigRecord]:
        """Unheld (or expired) configs that may have more to deliver, oldest first."""
        params: list[Any] = [now, *_TERMINAL]
        sql = _CLAIMABLE
        if task_ids is not None:
            if not task_ids:
                return []
            sql += f" AND p.task_id IN ({', '.join('?' * len(task_ids))})"
            params.extend(task_ids)
        params.append(limit)
        rows = await self._read(lambda conn: conn.execute(
            sql + " ORDER BY p.created LIMIT ?", params).fetchall())
        return [_push_row(row) for row in rows]
