"""Who a request speaks for: an `Identity` (principal, tenant, roles), sans-IO.

Every authenticated request resolves to one, whatever the credential (a static token,
a JWT from an identity provider, a token of the built-in token service, or none when
auth is off). The rules that turn claims or token-file attributes into an identity
live here, so every binding applies the same ones.

Tasks, push configs and contexts are owned by `owner_key(identity)`: the principal
within its tenant. Two tenants never share an owner key, so nothing one tenant's
callers can name is visible to another's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "ClaimNames",
    "Identity",
    "IdentityError",
    "TENANT_SEPARATOR",
    "check_name",
    "identity_from_claims",
    "owner_key",
    "parse_token_attributes",
]

TENANT_SEPARATOR = "\x1f"
"""Between tenant and principal in an owner key; refused in both names."""

MAX_NAME = 256


class IdentityError(ValueError):
    """Claims or attributes that make no identity; the message names the field only."""


@attrs.frozen
class Identity:
    """The caller: `principal` within `tenant` ("" = no tenant), holding `roles`."""

    principal: str
    tenant: str = ""
    roles: frozenset[str] = frozenset()
    via: str = "anonymous"
    """What proved it: "anonymous", "static", "jwt" or "token-service" (for logs)."""
    expires_at: float | None = None
    """Unix time the credential expires (JWTs), None when it does not."""


def owner_key(identity: Identity) -> str:
    """The owner of what `identity` creates: its principal, prefixed by its tenant.

    Without a tenant it is the principal alone, as stored before tenants existed."""
    if not identity.tenant:
        return identity.principal
    return f"{identity.tenant}{TENANT_SEPARATOR}{identity.principal}"


def check_name(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """A principal, tenant or role name: a string of printable characters, bounded."""
    if not isinstance(value, str):
        raise IdentityError(f"{field} must be a string")
    if not value and not allow_empty:
        raise IdentityError(f"{field} must not be empty")
    if len(value) > MAX_NAME:
        raise IdentityError(f"{field} is longer than {MAX_NAME} characters")
    if any(not ch.isprintable() for ch in value):
        raise IdentityError(f"{field} holds a control or non-printable character")
    return value


@attrs.frozen
class ClaimNames:
    """Which JWT claims name the principal, the tenant and the roles."""

    principal: str = "sub"
    tenant: str = "tenant"
    roles: str = "roles"


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; a dotted name walks nested objects (``realm_access.roles``)."""
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def identity_from_claims(claims: Mapping[str, Any], names: ClaimNames,
                         default_roles: Iterable[str], *, via: str = "jwt") -> Identity:
    """The identity verified claims describe. Roles may be a list or a space- or
    comma-separated string; missing roles give `default_roles`."""
    principal = check_name(_claim(claims, names.principal), f"claim {names.principal!r}")
    tenant_raw = _claim(claims, names.tenant)
    tenant = "" if tenant_raw is None else check_name(tenant_raw, f"claim {names.tenant!r}",
                                                      allow_empty=True)
    raw = _claim(claims, names.roles)
    if raw is None:
        roles = frozenset(default_roles)
    elif isinstance(raw, str):
        roles = frozenset(r for r in raw.replace(",", " ").split() if r)
    elif isinstance(raw, list) and len(raw) <= 64:
        roles = frozenset(check_name(r, f"claim {names.roles!r}") for r in raw)
    else:
        raise IdentityError(f"claim {names.roles!r} must be a list or a string of role names")
    for role in roles:
        check_name(role, f"claim {names.roles!r}")
    exp = claims.get("exp")
    expires = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    return Identity(principal=principal, tenant=tenant, roles=roles, via=via,
                    expires_at=expires)


def parse_token_attributes(fields: Iterable[str]) -> dict[str, str]:
    """The ``roles=a,b`` and ``tenant=t`` attributes after a token in a token file."""
    out: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep or key not in ("roles", "tenant"):
            raise ValueError(f"unknown attribute {key!r} (expected roles=a,b or tenant=t)")
        if key in out:
            raise ValueError(f"attribute {key!r} given twice")
        try:
            if key == "tenant":
                check_name(value, "tenant")
            else:
                for role in value.split(","):
                    check_name(role, "roles")
        except IdentityError as exc:
            raise ValueError(str(exc)) from None
        out[key] = value
    return out
