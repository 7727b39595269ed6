"""`StoreOpenError`: a task store that cannot be opened, said for the operator.

A bare `sqlite3.DatabaseError` or `OSError` out of the store's start-up names
neither the file nor the fix. The backend catches what went wrong while opening
and raises this instead, with one line naming the path and what to do; the CLI
prints that line and `open_server` lets it through unchanged.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

__all__ = ["StoreOpenError", "sqlite_open_error"]

_ELSEWHERE = "choose another data directory"


class StoreOpenError(RuntimeError):
    """The task store could not be opened; the message names the path and what to do.

    A `RuntimeError` because that is what an unsupported schema version raised before.
    """


def sqlite_open_error(file: Path, exc: BaseException) -> StoreOpenError:
    """Explain why opening the SQLite store at `file` raised `exc`.

    Only called once opening has failed: it looks at the paths (and, for a write
    failure, tries to create a file next to the store) to tell which case it is.
    """
    prefix = f"cannot open the task store {file}"
    blocker = _not_a_directory(file.parent)
    if blocker is not None:
        return StoreOpenError(
            f"{prefix}: {blocker} is a file, not a directory; move it away or {_ELSEWHERE}")
    if file.is_dir():
        return StoreOpenError(
            f"{prefix}: it is a directory, not an SQLite file; move it away or {_ELSEWHERE}")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        # "file is not a database", "database disk image is malformed"
        return StoreOpenError(
            f"{prefix}: not an SQLite database, or a damaged one ({exc}); restore it from a "
            "backup, or move it away to start with an empty store")
    if isinstance(exc, RuntimeError):  # an unsupported schema version, no WAL mode
        return StoreOpenError(f"{prefix}: {exc}")
    if isinstance(exc, OSError) and not file.parent.exists():  # mkdir of the data directory
        return StoreOpenError(
            f"{prefix}: cannot create {exc.filename or file.parent} ({exc.strerror}); create "
            f"it, or {_ELSEWHERE}")
    refused = _write_refused(file)
    if refused is not None:
        return StoreOpenError(f"{prefix}: {refused}; make it writable by this user, or "
                              f"{_ELSEWHERE}")
    return StoreOpenError(f"{prefix}: {exc}")


def _not_a_directory(directory: Path) -> Path | None:
    """The nearest existing one of `directory` and its parents, if it is not a directory."""
    for path in (directory, *directory.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def _write_refused(file: Path) -> str | None:
    """Why this process may not write `file` or create files next to it (SQLite's
    -wal and -shm files), or None if it may."""
    if file.exists():
        try:
            os.close(os.open(file, os.O_RDWR))
        except OSError as exc:
            return f"cannot write {file} ({exc.strerror})"
    try:
        fd, probe = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}-probe-")
    except OSError as exc:
        return f"cannot create files in {file.parent} ({exc.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None
