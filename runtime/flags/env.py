"""What every `python -m runtime` flag shares: its environment variable and value types.

Each flag FOO has the variable TRIO_A2A_FOO as its default; a bad value, from the flag
or the variable, is a usage error that names both.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

__all__ = ["ENV_PREFIX", "add_logging_arguments"]

ENV_PREFIX = "TRIO_A2A_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _number_type(kind: type[int] | type[float], name: str) -> Callable[[str], float]:
    """An argparse `type` for a number flag whose default may come from the
    environment variable `name`: a bad value, on the command line or in the
    variable, is a usage error that names both."""

    def parse(value: str) -> float:
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"must be {what}, not {value!r} (from the flag or {ENV_PREFIX}{name})"
            ) from None

    parse.__name__ = kind.__name__
    return parse


def _port_type(name: str) -> Callable[[str], int]:
    """An argparse `type` for a TCP port flag (default from the variable `name`): a
    value outside 0-65535 is a usage error naming the range, not an OverflowError
    from `bind()` once the server starts."""
    as_int = _number_type(int, name)

    def parse(value: str) -> int:
        port = int(as_int(value))
        if not 0 <= port <= 65535:
            raise argparse.ArgumentTypeError(
                f"must be a port number in 0-65535, not {port} (from the flag or "
                f"{ENV_PREFIX}{name})"
            )
        return port

    parse.__name__ = "port"
    return parse


def _number_env(name: str, default: float) -> str:
    """The default of a number flag as text: the variable's value if set and not
    empty, else `default`; argparse parses it with the flag's `_number_type`."""
    value = _env(name)
    return value if value and value.strip() else str(default)


def _heartbeat_env() -> str | None:
    """TRIO_A2A_HEARTBEAT_INTERVAL: unset, empty or 0 means the server's value (None);
    anything else is parsed, and checked, like the flag (argparse parses a text
    default with the flag's type, so a bad value is a usage error)."""
    value = _env("HEARTBEAT_INTERVAL")
    if not value or not value.strip():
        return None
    try:
        return None if float(value) == 0 else value
    except ValueError:
        return value


def _bool_env(name: str) -> bool:
    return (_env(name) or "").strip().lower() in ("1", "true", "yes", "on")


def add_logging_arguments(p: argparse.ArgumentParser) -> None:
    """--log-level and --log-format, which the long-running commands share."""
    p.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="log level [TRIO_A2A_LOG_LEVEL] (default info)",
    )
    p.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=("text", "json"),
        help="'json' writes one JSON object per line [TRIO_A2A_LOG_FORMAT]",
    )
