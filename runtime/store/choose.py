"""Opening the task store backend a server's configuration names."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from actors.store_port import TaskBackend
from runtime.store.memory import open_memory_backend
from runtime.store.sqlite import open_sqlite_backend

__all__ = ["open_backend"]


@contextlib.asynccontextmanager
async def open_backend(config: Any) -> AsyncIterator[TaskBackend]:
    """The task store a `runtime.server.ServerConfig` names (`store`, `data_dir`,
    `sqlite_synchronous`, `database_url`, `database_pool_size`), open for the block."""
    if config.store == "memory":
        async with open_memory_backend() as backend:
            yield backend
    elif config.store == "sqlite":
        path = Path(config.data_dir) / "tasks.sqlite3"
        async with open_sqlite_backend(path, synchronous=config.sqlite_synchronous) as backend:
            yield backend
    elif config.store == "postgres":
        if not config.database_url:
            raise ValueError("store 'postgres' needs a database URL (--database-url or "
                             "TRIO_A2A_DATABASE_URL)")
        # imported here: psycopg is a cost only a server on PostgreSQL pays
        from runtime.store.postgres import open_postgres_backend

        async with open_postgres_backend(config.database_url,
                                         pool_size=config.database_pool_size) as backend:
            yield backend
    else:
        raise ValueError(f"unknown store {config.store!r}: use 'sqlite', 'memory' or 'postgres'")
