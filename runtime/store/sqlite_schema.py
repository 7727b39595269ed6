"""The SQLite task store's schema and its migrations.

The schema version lives in `PRAGMA user_version`. A new file gets the current
schema at once; an older one is migrated step by step, inside the same
IMMEDIATE transaction that read its version, so a crash mid-migration leaves
the file as it was. A file newer than this build is refused, never written.

To change the schema, bump `SCHEMA_VERSION`, change `_SCHEMA` (what a new file
gets) and add the step from the previous version to `_MIGRATIONS`.
"""

from __future__ import annotations

import logging
import sqlite3

__all__ = ["SCHEMA_VERSION", "prepare_schema"]

logger = logging.getLogger("runtime.store.sqlite")  # the backend's log: one place to look

SCHEMA_VERSION = 5
"""Stored in PRAGMA user_version; bump it and add a migration step when the schema changes."""

_SCHEMA = """
CREATE TABLE tasks (
    task_key   INTEGER PRIMARY KEY,
    task_id    TEXT NOT NULL UNIQUE,
    context_id TEXT NOT NULL,
    owner      TEXT NOT NULL,
    state      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    created_at REAL NOT NULL,
    status_at  REAL NOT NULL,
    task_json  TEXT NOT NULL,
    dispatch_json TEXT,
    version    INTEGER NOT NULL
);
CREATE INDEX tasks_by_time    ON tasks (status_at DESC, task_id DESC);
CREATE INDEX tasks_by_owner   ON tasks (owner, status_at DESC, task_id DESC);
CREATE INDEX tasks_by_context ON tasks (context_id, status_at DESC, task_id DESC);
CREATE INDEX tasks_by_state   ON tasks (state, status_at DESC, task_id DESC);
-- Keyed by the task's integer key (a rowid alias, so stable across VACUUM), not
-- its id: ids are usually random UUIDs, and keying the log by them scatters every
-- commit over the whole B-tree. Integer keys grow with creation, so appends to
-- live tasks' logs land in the last few pages (measured: ~25% fewer WAL pages
-- per commit).
CREATE TABLE events (
    task_key   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    event_json TEXT NOT NULL,
    PRIMARY KEY (task_key, seq)
) WITHOUT ROWID;
-- `created` aliases the rowid: assigned increasing on insert, kept on upsert and
-- stable across VACUUM, so it gives creation order.
CREATE TABLE push_configs (
    created       INTEGER PRIMARY KEY,
    task_id       TEXT NOT NULL,
    config_id     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL,
    config_json   TEXT NOT NULL,
    claim_owner   TEXT,
    claim_token   TEXT,
    claim_expires REAL,
    UNIQUE (task_id, config_id)
);
-- Request-signing nonces seen (runtime/store/sqlite_security.py), so a signed request
-- replayed after a restart, within its window, is refused as on PostgreSQL.
CREATE TABLE request_nonces (
    key_id  TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX request_nonces_by_time ON request_nonces (seen_at);
"""

_MIGRATIONS = {
    # v1 -> v2: routing, attempts and leases of remote workers
    1: ["ALTER TABLE tasks ADD COLUMN dispatch_json TEXT"],
    # v2 -> v3: the row version every write compares and sets. Existing rows start
    # at their sequence number: any start will do, since a version only has to grow
    # with every write from here on and writers read it back with the row.
    2: ["ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "UPDATE tasks SET version = seq"],
    # v3 -> v4: which replica delivers each push config, until when, under which token
    3: ["ALTER TABLE push_configs ADD COLUMN claim_owner TEXT",
        "ALTER TABLE push_configs ADD COLUMN claim_token TEXT",
        "ALTER TABLE push_configs ADD COLUMN claim_expires REAL"],
    # v4 -> v5: the request-signing nonces seen, kept across restarts
    4: ["CREATE TABLE IF NOT EXISTS request_nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL,"
        " seen_at REAL NOT NULL, PRIMARY KEY (key_id, nonce)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS request_nonces_by_time ON request_nonces (seen_at)"],
}


def prepare_schema(conn: sqlite3.Connection) -> None:
    """Switch to WAL, then create or migrate the schema; RuntimeError if the file's
    version is unknown to this build."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise RuntimeError(f"could not switch {conn} to WAL mode (got {mode!r})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            logger.info("created task store schema v%d", SCHEMA_VERSION)
        elif version in _MIGRATIONS:
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            logger.info("migrated task store schema to v%d", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise RuntimeError(
                f"task store schema v{version} is not supported (this build: v{SCHEMA_VERSION})"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
