"""A fresh PostgreSQL database per bench run: the ``{database_url}`` placeholder.

The bench creates one database with a unique name (``bench_<target>_<hex>``) on the
server at ``TRIO_A2A_BENCH_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, the machine's own PostgreSQL),
hands its URL to the target, and drops it when the target has been stopped, like
``{data_dir}`` is a fresh temporary directory. It also reads how much CPU the
PostgreSQL backends serving that database used (``/proc``, so only for a server on
this machine), since that work is outside the target's process tree.
"""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

from bench.procs import cpu_seconds

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENV_VAR = "TRIO_A2A_BENCH_DATABASE_URL"


class DatabaseError(Exception):
    pass


def admin_url() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_ADMIN_URL


def _connect(url: str):
    try:
        import psycopg
    except ImportError as exc:  # a dependency of trio-a2a, so unlikely
        raise DatabaseError("psycopg is not installed") from exc
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5,
                               application_name="trio-a2a-bench")
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {_redact(url)} ({ENV_VAR}): "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


def database_url(name: str, base: str | None = None) -> str:
    """``base`` (a postgresql:// URL) with its database name replaced by ``name``."""
    parts = urlsplit(base or admin_url())
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError(f"{ENV_VAR} must be a postgresql:// URL, got {_redact(base or '')!r}")
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _run(url: str, what: str, *statements: tuple[str, tuple]) -> list[list[tuple]]:
    """Run ``statements`` on one autocommit connection; psycopg errors become
    DatabaseError naming ``what``."""
    import psycopg

    conn = _connect(url)
    try:
        out = []
        for sql, params in statements:
            cur = conn.execute(sql, params)
            out.append(cur.fetchall() if cur.description is not None else [])
        return out
    except psycopg.Error as exc:
        raise DatabaseError(f"{what} failed: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        conn.close()


def create_database(target: str) -> tuple[str, str]:
    """Create a fresh, uniquely named database; return (name, URL to it)."""
    slug = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")[:30]
    name = f"bench_{slug}_{uuid.uuid4().hex[:10]}"
    url = admin_url()
    new_url = database_url(name, url)
    _run(url, f"CREATE DATABASE {name}", (f'CREATE DATABASE "{name}"', ()))
    return name, new_url


def drop_database(name: str) -> None:
    """Drop ``name``, first ending any session still connected to it."""
    _run(
        admin_url(),
        f"DROP DATABASE {name}",
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)),
        (f'DROP DATABASE IF EXISTS "{name}"', ()),
    )


def backend_cpu(name: str) -> dict[int, float] | None:
    """pid -> user+sys CPU seconds of each PostgreSQL backend connected to ``name``;
    None if they cannot be read (database on another machine, no permission)."""
    try:
        [rows] = _run(admin_url(), "listing backends",
                      ("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)))
    except DatabaseError:
        return None
    pids = [r[0] for r in rows]
    out = {}
    for pid in pids:
        cpu = cpu_seconds(pid)
        if cpu is not None:
            out[pid] = cpu
    if pids and not out:
        return None
    return out
