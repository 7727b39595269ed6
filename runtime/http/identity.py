"""Every request resolves to an `Identity`: the one place credentials are read.

`Authenticator.identify(authorization)` takes the request's Authorization header and
answers the identity it proves, or None (401). The credential may be a static token
(the token file, with its roles and tenant), a JWT (`runtime.http.jwt_auth`), or
nothing at all when auth is off (the anonymous identity, with `anonymous_roles`).
A worker token never acts as a client. Why a credential was refused is logged (never
the credential); the client hears only 401.

`TokenAuth` (`runtime.http.auth`) stays the principal-only view of the static tokens
for code that needs no roles.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping

from protocol.identity import Identity
from protocol.permissions import RoleTable
from protocol.security_errors import PermissionDeniedError, TenantMismatchError
from runtime.http.auth import TokenAuth, TokenEntry
from runtime.http.jwt_auth import JwtRejected, JwtVerifier, looks_like_jwt

__all__ = ["Authenticator", "TokenIssuer", "bearer_token", "check_tenant"]

log = logging.getLogger(__name__)

TokenIssuer = Callable[[str], Awaitable[Identity | None]]
"""A further source of identities for bearer JWTs (the built-in token service)."""


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


class Authenticator:
    """Credentials -> identities, and the role table that says what each may do."""

    def __init__(self, tokens: Mapping[str, str | TokenEntry] | None = None, *,
                 workers: TokenAuth | None = None, jwt: JwtVerifier | None = None,
                 roles: RoleTable | None = None,
                 default_roles: tuple[str, ...] = ("client",),
                 anonymous_roles: tuple[str, ...] = ("client",)) -> None:
        self.roles = roles or RoleTable()
        self.roles.check_known(default_roles, "default roles")
        self.roles.check_known(anonymous_roles, "anonymous roles")
        self._static: dict[bytes, Identity] = {}
        for token, entry in (tokens or {}).items():
            if isinstance(entry, str):
                entry = TokenEntry(entry)
            granted = entry.roles if entry.roles is not None else default_roles
            self.roles.check_known(granted, f"token of {entry.principal!r}")
            self._static[token.encode()] = Identity(
                principal=entry.principal, tenant=entry.tenant, roles=frozenset(granted),
                via="static")
        self._workers = workers
        self._jwt = jwt
        self.issuers: list[TokenIssuer] = []
        self._anonymous = Identity(principal="", roles=frozenset(anonymous_roles))

    @property
    def enabled(self) -> bool:
        """Whether requests must prove who they are (else all are anonymous)."""
        return bool(self._static) or self._jwt is not None or bool(self.issuers)

    async def identify(self, authorization: str | None) -> Identity | None:
        """The identity `authorization` proves; None to refuse the request (401)."""
        token = bearer_token(authorization)
        if not self.enabled:
            if token is not None and self._is_worker_token(token):
                return None
            return self._anonymous
        if token is None:
            return None
        found = self._static_identity(token)
        if found is not None:
            return found
        if not looks_like_jwt(token):
            log.info("bearer token refused", extra={"reason": "unknown static token"})
            return None
        for issuer in self.issuers:
            found = await issuer(token)
            if found is not None:
                return found
        if self._jwt is None:
            log.info("bearer token refused", extra={"reason": "JWTs are not accepted"})
            return None
        try:
            return await self._jwt.identify(token)
        except JwtRejected as exc:
            log.info("bearer token refused", extra={"reason": str(exc)})
            return None

    def api_key(self, token: str) -> Identity | None:
        """The identity of a static token, given as an API key (the token service)."""
        return self._static_identity(token)

    def _static_identity(self, token: str) -> Identity | None:
        given = token.encode()
        found = None
        for known, identity in self._static.items():
            if hmac.compare_digest(known, given):
                found = identity
        return found

    def _is_worker_token(self, token: str) -> bool:
        return self._workers is not None and self._workers.principal(f"Bearer {token}") not in (
            None, "")

    def require(self, identity: Identity, permission: str, what: str) -> None:
        """PermissionDeniedError unless `identity`'s roles allow `permission`; the
        message names the operation and the permission, nothing about any task."""
        if not self.roles.allows(identity.roles, permission):
            raise PermissionDeniedError(
                f"{what} needs permission {permission!r}, which the caller's roles "
                f"({', '.join(sorted(identity.roles)) or 'none'}) do not grant",
                metadata={"permission": permission})


def check_tenant(identity: Identity, requested: str | None) -> None:
    """A request naming a tenant must name the caller's own; an identity without a
    tenant (single-tenant deployments) ignores the request's, as before tenants."""
    if requested and identity.tenant and requested != identity.tenant:
        raise TenantMismatchError("the request names a tenant other than the caller's")

