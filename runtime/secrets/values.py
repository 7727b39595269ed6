"""Secret values that cannot leak by accident, and the errors that never carry them.

A `Secret` renders as `Secret('***')` through repr, str and format, refuses to
be pickled or hashed, and is not JSON-serializable, so it cannot reach a log
line, a status report or a traceback's rendering by way of a stray f-string.
The raw value is only ever handed out by `reveal()`, at the point of use.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

__all__ = [
    "REDACTED",
    "Secret",
    "SecretError",
    "SecretNotFound",
    "SecretRedactionFilter",
    "SecretSourceUnavailable",
    "redact",
]

REDACTED = "***"


class Secret:
    """A secret string whose every rendering is redacted; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret value must be a str")
        self._value = value

    def reveal(self) -> str:
        """The raw value: call it where the value is used (a header), nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash would be an oracle on the value

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def _values(secrets: Iterable[Secret | str]) -> list[str]:
    raw = {s.reveal() if isinstance(s, Secret) else s for s in secrets}
    # longest first, so a secret that contains another is replaced whole
    return sorted((v for v in raw if v), key=len, reverse=True)


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """`text` with every occurrence of every secret value replaced by `***`."""
    for value in _values(secrets):
        text = text.replace(value, REDACTED)
    return text


class SecretError(Exception):
    """A secret could not be resolved. Messages name sources and secret names, never values."""


class SecretNotFound(SecretError, LookupError):
    """No configured source holds the secret; `searched` lists where we looked, in order."""

    def __init__(self, name: str, searched: Iterable[str]) -> None:
        self.secret_name = name
        self.searched = tuple(searched)
        where = ", ".join(self.searched) if self.searched else "no sources (none configured)"
        super().__init__(f"secret {name!r} not found; looked in: {where}")


class SecretSourceUnavailable(SecretError):
    """A source could not answer (Vault down, 403, unreadable or unsafe file).

    `source` is the short label ("vault", "file", "env"); `description` names it
    for people (e.g. "Vault at http://127.0.0.1:8200").
    """

    def __init__(self, source: str, description: str, reason: str, *,
                 secret_name: str | None = None, searched: Iterable[str] = ()) -> None:
        self.source = source
        self.description = description
        self.reason = reason
        self.secret_name = secret_name
        self.searched = tuple(searched)
        message = f"{description} is unavailable: {reason}"
        if secret_name is not None:
            elsewhere = ", ".join(self.searched) if self.searched else "no other source"
            message = (f"secret {secret_name!r} could not be resolved: {message}; "
                       f"also looked in: {elsewhere}")
        super().__init__(message)

    def for_secret(self, name: str, searched: Iterable[str]) -> SecretSourceUnavailable:
        """The same failure, told as the reason one secret is missing."""
        return SecretSourceUnavailable(self.source, self.description, self.reason,
                                       secret_name=name, searched=searched)


# LogRecord attributes that are not user extras; everything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class SecretRedactionFilter(logging.Filter):
    """Scrubs known secret values from a record's message, args and string extras.

    Attach it to handlers (handler filters see records from every logger that
    propagates to them). `secrets` is called per record, so values resolved
    later are covered too (pass `store.known_secrets`).
    """

    def __init__(self, secrets: Callable[[], Iterable[Secret | str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        values = _values(self._secrets())
        if not values:
            return True
        record.msg = redact(record.getMessage(), values)
        record.args = None
        for key, val in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = _scrub(val, values)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            scrubbed = redact(record.exc_text, values)
            if scrubbed != record.exc_text:
                # a formatter that renders exc_info itself would undo the redaction
                record.exc_text, record.exc_info = scrubbed, None
        return True


def _scrub(val: Any, values: list[str]) -> Any:
    if isinstance(val, str):
        return redact(val, values)
    if isinstance(val, dict):
        return {k: _scrub(v, values) for k, v in val.items()}
    if isinstance(val, list | tuple):
        return type(val)(_scrub(v, values) for v in val)
    return val
