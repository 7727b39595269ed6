"""A task store that cannot be opened raises `StoreOpenError` naming the path and
what to do, from the backend and from the embedded `open_server` alike (the CLI
side is in tests/test_cli_bad_input.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from runtime.server import ServerConfig, open_server
from runtime.store import StoreOpenError, open_sqlite_backend

TIMEOUT = 10


async def _open_error(path: Path) -> str:
    with trio.fail_after(TIMEOUT), pytest.raises(StoreOpenError) as info:
        async with open_sqlite_backend(path):
            pass
    return str(info.value)


async def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    assert await _open_error(path) == (
        f"cannot open the task store {path}: not an SQLite database, or a damaged one "
        "(file is not a database); restore it from a backup, or move it away to start "
        "with an empty store")
    assert path.read_bytes() == b"garbage" * 1000


async def test_data_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    path = tmp_path / "data" / "deeper" / "tasks.sqlite3"
    assert await _open_error(path) == (
        f"cannot open the task store {path}: {tmp_path / 'data'} is a file, not a "
        "directory; move it away or choose another data directory")


async def test_store_file_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    path.mkdir()
    assert await _open_error(path) == (
        f"cannot open the task store {path}: it is a directory, not an SQLite file; "
        "move it away or choose another data directory")


async def test_unknown_schema_version_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    message = await _open_error(path)
    assert message.startswith(f"cannot open the task store {path}: task store schema v99 ")
    assert issubclass(StoreOpenError, RuntimeError)  # what it raised before it had a name


async def test_open_server_raises_the_same_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    config = ServerConfig(port=0, local_workers=0, data_dir=tmp_path / "data")
    with trio.fail_after(TIMEOUT), pytest.raises(StoreOpenError, match="is a file, not a dir"):
        async with open_server(config):
            pass


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_server_config_refuses_a_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match=f"^port must be in 0-65535, not {port}$"):
        ServerConfig(port=port)
