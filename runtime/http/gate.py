"""The checks every A2A operation passes, on every binding: who the caller is, whether
its roles allow the operation, whether the request's tenant is its own, and whether it
is within its rate limit. The bindings call these and nothing else about security.
"""

from __future__ import annotations

from typing import Any

from protocol.identity import Identity
from protocol.permissions import RoleTable
from protocol.security_errors import PermissionDeniedError
from runtime.http.identity import Authenticator, check_tenant
from runtime.http.signing_settings import SigningSettings

__all__ = ["authorize", "identify"]

_DEFAULT_ROLES = RoleTable()


async def identify(state: Any, authorization: str | None) -> Identity | None:
    """The caller of a request on the A2A endpoints; None to refuse it (401).

    An `AppState` built without an `Authenticator` keeps the principal-only rule of
    `TokenAuth.client_principal`, its callers holding the client role."""
    authenticator: Authenticator | None = getattr(state, "authenticator", None)
    if authenticator is not None:
        return await authenticator.identify(authorization)
    principal = state.auth.client_principal(authorization, state.worker_auth)
    return None if principal is None else Identity(principal, roles=frozenset({"client"}),
                                                   via="static")


def authorize(state: Any, identity: Identity, permission: str | None, what: str,
              tenant: str | None = None, signed_by: str | None = None, *,
              limit: bool = True) -> None:
    """Raise the precise refusal for this call, else take it from the rate limits.

    Checked in this order: the caller's own signing key when it must sign (401),
    permission (403), tenant (403), rate (429), so a caller that may not call at all
    never uses up its budget. `signed_by`: the key that signed the request. `limit`
    False: the operation takes from the rate limits itself (the token service's login)."""
    signing: SigningSettings | None = getattr(state, "signing", None)
    if signing is not None:
        signing.check_caller(identity.principal, signed_by)
    authenticator: Authenticator | None = getattr(state, "authenticator", None)
    if permission is not None:
        if authenticator is not None:
            authenticator.require(identity, permission, what)
        elif not _DEFAULT_ROLES.allows(identity.roles, permission):
            raise PermissionDeniedError(f"{what} needs permission {permission!r}")
    check_tenant(identity, tenant)
    limiter = getattr(state, "rate_limiter", None)
    if limiter is not None and limit:
        limiter.check(identity)
