"""The PostgreSQL task store schema, as numbered migrations.

`schema_version` holds one row per applied migration. Start-up (and
`migrate(url)`, behind `python -m runtime migrate`) applies the missing ones in
one transaction that first takes a transaction-scoped advisory lock, so
replicas starting at once queue on the lock and each after the first finds
nothing left to do. A database newer than this build is refused rather than
written with an older idea of the schema.

To change the schema, append a migration; never edit one that has shipped.
"""

from __future__ import annotations

import logging

from runtime.store.postgres_driver import PgConnection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "apply_migrations", "check_schema"]

logger = logging.getLogger(__name__)

MIGRATION_LOCK = 0x7472696F_61326101
"""`pg_advisory_xact_lock` key ("trioa2a" and 1): one migrator at a time per database."""

# task_id and everything else paged or compared is COLLATE "C": code-point order,
# the order of the memory and SQLite backends, whatever the database's locale.
# JSON is stored as TEXT, not JSONB: the model's own serialisation comes back
# byte for byte, nothing is parsed on write, and JSONB would refuse a string
# containing \u0000 that a client may legitimately send.
_V1 = """
CREATE TABLE tasks (
    task_key      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id       text COLLATE "C" NOT NULL UNIQUE,
    context_id    text COLLATE "C" NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    state         text NOT NULL,
    seq           bigint NOT NULL,
    created_at    double precision NOT NULL,
    status_at     double precision NOT NULL,
    task_json     text NOT NULL,
    dispatch_json text
);
CREATE INDEX tasks_by_time    ON tasks (status_at DESC, task_id DESC);
CREATE INDEX tasks_by_owner   ON tasks (owner, status_at DESC, task_id DESC);
CREATE INDEX tasks_by_context ON tasks (context_id, status_at DESC, task_id DESC);
CREATE INDEX tasks_by_state   ON tasks (state, status_at DESC, task_id DESC);
-- Keyed by the task's integer key, not its (usually random UUID) id: keys grow
-- with creation, so appends to live tasks' logs touch the right edge of the index.
CREATE TABLE events (
    task_key   bigint NOT NULL REFERENCES tasks (task_key),
    seq        bigint NOT NULL,
    event_json text NOT NULL,
    PRIMARY KEY (task_key, seq)
);
-- `created` gives creation order; an upsert keeps it, a delete and re-insert does not.
CREATE TABLE push_configs (
    created       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id       text COLLATE "C" NOT NULL,
    config_id     text COLLATE "C" NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    delivered_seq bigint NOT NULL,
    config_json   text NOT NULL,
    UNIQUE (task_id, config_id)
);
"""

# The row version every write compares and sets. Existing rows start at their
# sequence number: any start will do, since a version only has to grow with every
# write from here on and writers read it back with the row before they write.
_V2 = """
ALTER TABLE tasks ADD COLUMN version bigint;
UPDATE tasks SET version = seq;
ALTER TABLE tasks ALTER COLUMN version SET NOT NULL;
"""

# Which replica delivers each push config, until when, under which fencing token
# (runtime/store/postgres_push.py). The partial index keeps finding the claims of one
# replica (at its restart) off the whole table.
_V3 = """
ALTER TABLE push_configs ADD COLUMN claim_owner text COLLATE "C";
ALTER TABLE push_configs ADD COLUMN claim_token text COLLATE "C";
ALTER TABLE push_configs ADD COLUMN claim_expires double precision;
CREATE INDEX push_configs_by_claim_owner ON push_configs (claim_owner)
    WHERE claim_owner IS NOT NULL;
"""

# The token service's revocations and spent refresh tokens (runtime/http/revocations.py),
# read by every replica: a family revoked on one is refused on all. Records are dropped
# once the tokens they concern have expired (by expires_at).
_V4 = """
CREATE TABLE token_revocations (
    kind       text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX token_revocations_by_expiry ON token_revocations (expires_at);
"""

# Request-signing nonces seen (runtime/http/request_signing.py), shared so a request
# replayed to another replica within the window is refused there too; pruned by seen_at.
_V5 = """
CREATE TABLE request_nonces (
    key_id  text COLLATE "C" NOT NULL,
    nonce   text COLLATE "C" NOT NULL,
    seen_at double precision NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_by_time ON request_nonces (seen_at);
"""

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("tasks, event logs and push configs", _V1),
    ("row versions: every write compares and sets", _V2),
    ("push delivery claims: one replica delivers each config", _V3),
    ("token service revocations, shared by the replicas", _V4),
    ("request-signing nonces, shared by the replicas", _V5),
)
"""(description, SQL) of each version, in order: version n is MIGRATIONS[n - 1]."""

SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def _current_version(conn: PgConnection) -> int:
    res = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    if res.rows[0][0] != "t":
        return 0
    return int((await conn.execute("SELECT max(version) FROM schema_version")).rows[0][0] or 0)


async def check_schema(conn: PgConnection) -> None:
    """RuntimeError unless the schema is exactly this build's (start-up without migrating)."""
    found = await _current_version(conn)
    if found > SCHEMA_VERSION:
        raise RuntimeError(_newer(found))
    if found < SCHEMA_VERSION:
        raise RuntimeError(f"task store schema v{found}, this build needs v{SCHEMA_VERSION}; "
                           "run `python -m runtime migrate`")


def _newer(found: int) -> str:
    return (f"task store schema v{found} is newer than this build (v{SCHEMA_VERSION}); "
            "run a newer trio-a2a")


async def apply_migrations(conn: PgConnection) -> tuple[int, int]:
    """Bring the schema up to `SCHEMA_VERSION`; (version before, version after).

    RuntimeError if the database's schema is newer than this build knows.
    """
    await conn.script("BEGIN")
    try:
        await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", (MIGRATION_LOCK,))
        await conn.script(_VERSION_TABLE)
        before = await _current_version(conn)
        if before > SCHEMA_VERSION:
            raise RuntimeError(_newer(before))
        for version in range(before + 1, SCHEMA_VERSION + 1):
            description, sql = MIGRATIONS[version - 1]
            await conn.script(sql)
            await conn.execute(
                "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                (version, description))
            logger.info("task store schema: applied v%d (%s)", version, description)
        await conn.script("COMMIT")
    except BaseException:
        if not conn.broken:
            conn.close()  # the server rolls the transaction back, lock included
        raise
    return before, SCHEMA_VERSION
