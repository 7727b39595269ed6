"""The local secret sources: environment variables and a secrets file.

Every source answers `lookup(name)` with the value, None when it does not hold
the name, or raises `SecretSourceUnavailable` when it cannot answer at all.

The secrets file is TOML with top-level string values (`OPENAI_API_KEY = "sk-..."`).
It must be accessible by its owner only (no group/other permission bits, e.g.
mode 0600): a file others can read has leaked already and one they can write
can swap a key, so such a file is refused as a whole, not read.
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import trio

from runtime.secrets.values import SecretSourceUnavailable

__all__ = ["EnvSource", "FileSource", "SecretSource", "check_file_mode", "parse_secrets_file"]


class SecretSource(Protocol):
    """One place secrets can come from."""

    label: str  # short name used in `order`: "vault", "file", "env"

    @property
    def description(self) -> str:
        """Names the source for people; never includes a credential."""
        ...

    async def lookup(self, name: str) -> str | None:
        """The value, or None if this source does not hold `name`."""
        ...


class EnvSource:
    """Secrets from environment variables, `prefix + name` (exact case)."""

    label = "env"

    def __init__(self, environ: Mapping[str, str] | None = None, prefix: str = "") -> None:
        self._environ = os.environ if environ is None else environ
        self._prefix = prefix

    @property
    def description(self) -> str:
        return f"environment ({self._prefix}*)" if self._prefix else "environment"

    async def lookup(self, name: str) -> str | None:
        value = self._environ.get(self._prefix + name)
        return value or None  # an empty variable is an unset key, not an empty key


def check_file_mode(path: Path, mode: int) -> None:
    """Refuse a secrets file with any group/other permission bits (POSIX only)."""
    if sys.platform != "win32" and mode & 0o077:
        raise SecretSourceUnavailable(
            "file", f"secrets file {path}",
            f"its mode is {stat.S_IMODE(mode):04o}, so group/others can access it; "
            f"run `chmod 600 {path}`")


def parse_secrets_file(path: Path, text: str) -> dict[str, str]:
    """Top-level string values of a TOML document; errors name keys, never values."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries a position, not the document's content
        raise SecretSourceUnavailable("file", f"secrets file {path}",
                                      f"not valid TOML: {exc}") from None
    bad = sorted(k for k, v in doc.items() if not isinstance(v, str))
    if bad:
        raise SecretSourceUnavailable(
            "file", f"secrets file {path}",
            f"values must be top-level strings; not a string: {', '.join(bad)}")
    return doc


class FileSource:
    """Secrets from a TOML file, re-read on each lookup (the store caches results)."""

    label = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def description(self) -> str:
        return f"secrets file {self.path}"

    def _read(self) -> dict[str, str]:
        try:
            with self.path.open("rb") as f:
                check_file_mode(self.path, os.fstat(f.fileno()).st_mode)
                raw = f.read()
        except OSError as exc:
            raise SecretSourceUnavailable("file", self.description,
                                          exc.strerror or type(exc).__name__) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretSourceUnavailable("file", self.description,
                                          "not UTF-8 text") from None
        return parse_secrets_file(self.path, text)

    async def lookup(self, name: str) -> str | None:
        values = await trio.to_thread.run_sync(self._read)
        return values.get(name) or None
