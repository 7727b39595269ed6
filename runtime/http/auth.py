"""Bearer-token authentication: which principal a request speaks for.

Tokens come from a file (one `principal:token` per line, optionally followed by
`roles=a,b` and `tenant=t` attributes; blank lines and `#` comments are skipped)
and/or an environment variable (`principal:token` pairs separated by commas). An
entry without a `:` is refused, not taken as a token, and so is a file holding no
tokens at all: either would quietly give an auth set other than the one meant.
Errors name the file (or variable) and the line, never the token. Comparison is
constant-time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from protocol.identity import parse_token_attributes

__all__ = ["RepeatedAuthorization", "TokenAuth", "TokenEntry", "load_token_entries",
           "load_tokens", "one_authorization", "parse_token_entries", "parse_token_lines"]


@attrs.frozen
class TokenEntry:
    """One line of a token file: whose token it is, and the roles and tenant it grants
    (None: the configured default roles)."""

    principal: str
    roles: tuple[str, ...] | None = None
    tenant: str = ""


def parse_token_lines(lines: Iterable[str], *, source: str,
                      unit: str = "entry") -> dict[str, str]:
    """Parse `principal:token` lines into {token: principal}; ValueError names `source`
    and the line (`unit` says what a line is called: "line" in a file)."""
    return {t: e.principal for t, e in parse_token_entries(lines, source=source,
                                                           unit=unit).items()}


def parse_token_entries(lines: Iterable[str], *, source: str,
                        unit: str = "entry") -> dict[str, TokenEntry]:
    """Parse `principal:token [roles=a,b] [tenant=t]` lines into {token: TokenEntry}."""
    tokens: dict[str, TokenEntry] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principal, sep, token = line.partition(":")
        if not sep:
            raise ValueError(f"{source} {unit} {n}: expected 'principal:token' (no ':' found)")
        principal, (token, *attributes) = principal.strip(), (token.split() or [""])
        if not token or not principal:
            raise ValueError(f"{source} {unit} {n}: expected 'principal:token'")
        try:
            attrs_ = parse_token_attributes(attributes)
        except ValueError as exc:
            raise ValueError(f"{source} {unit} {n}: {exc}") from None
        if token in tokens and tokens[token].principal != principal:
            raise ValueError(
                f"{source} {unit} {n}: token already belongs to {tokens[token].principal!r}")
        roles = tuple(attrs_["roles"].split(",")) if "roles" in attrs_ else None
        tokens[token] = TokenEntry(principal, roles, attrs_.get("tenant", ""))
    return tokens


def load_tokens(file: str | os.PathLike[str] | None, env_value: str | None) -> dict[str, str]:
    """Tokens from a file and/or an env value; {} means auth is off.

    A file given but holding no tokens is a ValueError, not an empty set."""
    return {t: e.principal for t, e in load_token_entries(file, env_value).items()}


def load_token_entries(file: str | os.PathLike[str] | None,
                       env_value: str | None) -> dict[str, TokenEntry]:
    """`load_tokens` with each token's roles and tenant."""
    tokens: dict[str, TokenEntry] = {}
    if file:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read token file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"token file {path} is not UTF-8 text") from exc
        from_file = parse_token_entries(text.splitlines(), source=str(path), unit="line")
        if not from_file:
            raise ValueError(f"{path} holds no tokens: expected one 'principal:token' per "
                             "line (blank lines and '#' comments are skipped)")
        tokens.update(from_file)
    if env_value:
        tokens.update(parse_token_entries(env_value.split(","), source="TRIO_A2A_TOKENS"))
    return tokens


class RepeatedAuthorization(ValueError):
    """A request carries more than one Authorization header.

    Refused rather than resolved: which one would count depends on each server
    component's header parser (the JSON-RPC endpoint kept the last, Quart the
    first), so one pair of tokens could pass on one endpoint and not another."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the request has {count} Authorization headers; send exactly one")


def one_authorization(values: Sequence[str]) -> str | None:
    """The request's Authorization header (None without one), given every value it
    arrived with; `RepeatedAuthorization` if there are several."""
    if len(values) > 1:
        raise RepeatedAuthorization(len(values))
    return values[0] if values else None


def _bearer(authorization: str | None) -> bytes | None:
    """The credential of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential.strip().encode()


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
        given = _bearer(authorization)
        if given is None:
            return None
        found = None
        for token, principal in self._tokens.items():
            if hmac.compare_digest(token, given):
                found = principal
        return found

    def client_principal(self, authorization: str | None,
                         workers: TokenAuth | None) -> str | None:
        """The client principal of a request on the A2A endpoints, None to refuse it (401).

        `self` holds the client tokens, `workers` the worker tokens: a worker token
        never acts as a client. With client auth on it is not a client token (the
        sets are disjoint) and `principal` refuses it; with client auth off every
        request is served as the anonymous principal "" except one presenting a
        worker token. That check is a dict lookup, not constant-time: it need not
        be, since the answer (401 or not) tells the same anyway.
        """
        if self._tokens:
            return self.principal(authorization)
        if authorization and workers is not None and workers._tokens:
            if _bearer(authorization) in workers._tokens:
                return None
        return ""
