"""Bearer-token authentication: which principal a request speaks for.

Tokens come from a file (one `principal:token` per line, `#` comments) and/or
an environment variable (`principal:token` pairs separated by commas). A bare
token without a principal name is its own principal, shown as `token-<n>`.
Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["TokenAuth", "load_tokens", "parse_token_lines"]


def parse_token_lines(lines: Iterable[str], *, source: str) -> dict[str, str]:
    """Parse `principal:token` lines into {token: principal}; ValueError names the line."""
    tokens: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principal, sep, token = line.partition(":")
        if not sep:
            principal, token = f"token-{len(tokens) + 1}", line
        principal, token = principal.strip(), token.strip()
        if not token or not principal:
            raise ValueError(f"{source} entry {n}: expected 'principal:token'")
        if token in tokens and tokens[token] != principal:
            raise ValueError(f"{source} entry {n}: token already belongs to {tokens[token]!r}")
        tokens[token] = principal
    return tokens


def load_tokens(file: str | os.PathLike[str] | None, env_value: str | None) -> dict[str, str]:
    """Tokens from a file and/or an env value; {} means auth is off."""
    tokens: dict[str, str] = {}
    if file:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read token file {path}: {exc.strerror}") from exc
        tokens.update(parse_token_lines(text.splitlines(), source=str(path)))
    if env_value:
        tokens.update(parse_token_lines(env_value.split(","), source="TRIO_A2A_TOKENS"))
    return tokens


class TokenAuth:
    """Maps an Authorization header to a principal; None when it is missing or wrong."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = {t.encode(): p for t, p in tokens.items()}

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def principal(self, authorization: str | None) -> str | None:
        if not self._tokens:
            return ""
        if not authorization:
            return None
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return None
        given = credential.strip().encode()
        found = None
        for token, principal in self._tokens.items():
            if hmac.compare_digest(token, given):
                found = principal
        return found
