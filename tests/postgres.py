"""PostgreSQL for the tests: the machine's real server, a database per test run.

`TRIO_A2A_TEST_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/postgres)
is the maintenance database to connect to. The session creates its own uniquely
named database there and drops it at the end; each test that uses it starts
from empty tables. If the server cannot be reached the tests that need it fail
with a message saying so: CI must run them, so they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

ADMIN_URL = os.environ.get(
    "TRIO_A2A_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
    pytest.fail(
        f"PostgreSQL at {ADMIN_URL} is not reachable ({reason}). The PostgreSQL store "
        "tests need it: start it, or point TRIO_A2A_TEST_DATABASE_URL at a server where "
        "this user may create databases.", pytrace=False)


def create_database(prefix: str = "trio_a2a_test") -> str:
    """Create a uniquely named empty database; its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(ADMIN_URL, dbname=name)


def drop_database(url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(str(name))))


@pytest.fixture(scope="session")
def postgres_session_db() -> Iterator[str]:
    """One database for the whole run, dropped at the end."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def postgres_url(postgres_session_db: str) -> str:
    """The run's database with its tables (if created yet) emptied."""
    with psycopg.connect(postgres_session_db, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF to_regclass('tasks') IS NOT NULL THEN"
            " TRUNCATE tasks, events, push_configs RESTART IDENTITY; END IF;"
            " IF to_regclass('token_revocations') IS NOT NULL THEN"
            " TRUNCATE token_revocations, request_nonces; END IF; END $$")
    return postgres_session_db


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A database of its own for this test (no schema yet), dropped after it."""
    url = create_database("trio_a2a_fresh")
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(autouse=True)
def _postgres_first(request: pytest.FixtureRequest) -> None:
    """Set up the database of a `backend[postgres]` test in pytest's own setup phase,
    before the trio fixtures run, so an unreachable server fails as one clear line
    rather than inside an exception group."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "postgres":
        request.getfixturevalue("postgres_url")
