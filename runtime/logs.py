"""Logging set-up for the CLI processes: text lines, or one JSON object per line.

Both formats carry the structured `extra=` fields of a record (task_id, context_id,
worker_id, attempt_id, principal, ...): the text format appends them as `key=value`,
the JSON format writes them as real JSON values. Kept apart from `runtime.cli` so the
log format can be used (and tested) without pulling in the command line;
`runtime.cli` re-exports the names.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["BANNER_LOGGER", "JsonLogFormatter", "TextLogFormatter", "banner", "log_fatal",
           "setup_logging", "structured_fields"]

BANNER_LOGGER = "runtime.banner"
"""The start banner's logger: it logs at INFO whatever --log-level says, so the line
naming the bound address is always there (and in JSON with --log-format json)."""

_SKIP = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _SKIP and not k.startswith("_")}


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _utc_ms(record: logging.LogRecord) -> str:
    """2026-12-07T18:59:01.123Z: UTC, milliseconds, and the zone, so lines from
    processes in different zones sort and compare. A busy server logs many lines a
    second: the second's text is formatted once (one tuple, so threads logging
    at once never pair one second with another's text)."""
    global _second
    second = int(record.created)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(record.msecs):03d}Z"


def _json_default(value: object) -> object:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the structured `extra` fields of each record
    as JSON values (a list stays a list; what JSON cannot hold becomes its str)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _utc_ms(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(structured_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:
            return json.dumps(out, default=_json_default)
        except (TypeError, ValueError):  # e.g. a dict with tuple keys, a circular list
            return json.dumps({k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                               for k, v in out.items()})


_needs_quotes = re.compile('[ "=\n]').search


def _text_value(value: object) -> str:
    if value is None:  # most optional fields, most of the time
        return "None"
    if isinstance(value, str):
        return value if value and _needs_quotes(value) is None else json.dumps(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return str(value)


class TextLogFormatter(logging.Formatter):
    """`ts LEVEL logger: message key=value ...`, values with spaces or quotes quoted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_ms(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = structured_fields(record)
        if not fields:
            return line
        pairs = " ".join([f"{k}={_text_value(v)}" for k, v in fields.items()])
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return f"{head} {pairs}{sep}{tail}"


class _QuietHttpx(logging.Filter):
    """httpx logs every request at INFO ("HTTP Request: POST ..."): for a worker
    that is one line per provider call. Those lines are DEBUG here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(("httpx", "httpcore")):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else TextLogFormatter())
    handler.addFilter(_QuietHttpx())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger(BANNER_LOGGER).setLevel(logging.INFO)


def log_fatal(fmt: str, exc: BaseException) -> None:
    """The one line a failed server or worker ends with: a JSON record with
    --log-format json (every line is JSON), else `error: ...`."""
    if fmt == "json":
        logging.getLogger("runtime.cli").error("error: %s", exc, extra={"error": str(exc)})
    else:
        print(f"error: {exc}", file=sys.stderr)


def banner(message: str, **fields: Any) -> None:
    """The line a process logs once it serves (its address), whatever the log level."""
    logging.getLogger(BANNER_LOGGER).info(message, extra=fields)
