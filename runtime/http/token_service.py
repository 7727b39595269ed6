"""The built-in token service, for deployments without an identity provider.

Log in with an API key (a token of the token file) for a short-lived access token and a
longer refresh token, both HS256 JWTs signed with the service's own secret and naming
the key's principal, tenant and roles. Refreshing spends the refresh token and hands out
a new pair of the same family; presenting a spent refresh token again (a stolen copy
replayed, or the thief's copy after the owner refreshed) revokes the whole family. Log
out revokes the caller's family; verify tells a token's status. Revocations are kept by
`runtime.http.revocations` (durable in the task store's SQLite file).

The operations are JSON-RPC methods under `trio-a2a/tokens.*` (`TOKEN_METHODS`, both
protocol generations) and HTTP+JSON routes `POST /tokens:login` etc. (`token_routes`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import jwt

from protocol.errors import InvalidParamsError
from protocol.identity import Identity
from protocol.security_errors import UnauthenticatedError
from runtime.http.rate_limit import RateLimiter
from runtime.http.revocations import Revocations

__all__ = ["TokenService", "TokenServiceSettings", "UnauthenticatedError"]

log = logging.getLogger(__name__)


@attrs.frozen
class TokenServiceSettings:
    secret: str = attrs.field(repr=False)
    """HS256 signing secret of the service's tokens (32 bytes or more)."""
    issuer: str = "trio-a2a"
    access_ttl: float = 900.0
    refresh_ttl: float = 30 * 86400.0

    def __attrs_post_init__(self) -> None:
        if len(self.secret.encode()) < 32:
            raise ValueError("the token service secret must be at least 32 bytes")
        if not (0 < self.access_ttl <= self.refresh_ttl):
            raise ValueError("token lifetimes: 0 < access_ttl <= refresh_ttl")


class TokenService:
    def __init__(self, settings: TokenServiceSettings, revocations: Revocations,
                 api_key: Callable[[str], Identity | None], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._revocations = revocations
        self._api_key = api_key
        self._clock = clock

    # --- tokens ------------------------------------------------------------------------

    def _issue(self, identity: Identity, family: str) -> dict[str, Any]:
        s, now = self.settings, int(self._clock())
        base = {"iss": s.issuer, "aud": s.issuer, "sub": identity.principal,
                "tenant": identity.tenant, "roles": sorted(identity.roles), "fam": family,
                "iat": now, "nbf": now}
        access = jwt.encode({**base, "typ": "access", "jti": uuid.uuid4().hex,
                             "exp": now + int(s.access_ttl)}, s.secret, algorithm="HS256")
        refresh = jwt.encode({**base, "typ": "refresh", "jti": uuid.uuid4().hex,
                              "exp": now + int(s.refresh_ttl)}, s.secret, algorithm="HS256")
        return {"accessToken": access, "refreshToken": refresh, "tokenType": "Bearer",
                "expiresIn": int(s.access_ttl), "refreshExpiresIn": int(s.refresh_ttl)}

    def _decode(self, token: str) -> dict[str, Any] | None:
        s = self.settings
        try:
            if jwt.get_unverified_header(token).get("alg") != "HS256":
                return None
            claims = jwt.decode(token, s.secret, algorithms=["HS256"], issuer=s.issuer,
                                audience=s.issuer, leeway=0,
                                options={"require": ["exp", "iss", "aud", "sub", "jti"]})
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        if not isinstance(claims.get("fam"), str) or claims.get("typ") not in (
                "access", "refresh"):
            return None
        return claims

    @staticmethod
    def _identity(claims: dict[str, Any]) -> Identity:
        return Identity(principal=str(claims["sub"]), tenant=str(claims.get("tenant") or ""),
                        roles=frozenset(str(r) for r in claims.get("roles") or ()),
                        via="token-service", expires_at=float(claims["exp"]))

    async def identify(self, token: str) -> Identity | None:
        """The identity of a valid, unrevoked access token of this service (the
        Authenticator's `TokenIssuer`); None for anything else."""
        claims = self._decode(token)
        if claims is None or claims["typ"] != "access" or await self._revocations.is_revoked(
                claims["fam"]):
            return None
        return self._identity(claims)

    # --- operations ----------------------------------------------------------------------

    async def login(self, params: dict[str, Any], *, limits: RateLimiter | None = None,
                    address: str = "") -> dict[str, Any]:
        """Tokens for a valid API key. With `limits`: from the key's principal's
        buckets; a failed login from the bucket of the client's `address`, which once
        spent refuses every login from there until it refills."""
        key = _string(params, "apiKey")
        if limits is not None:
            limits.check_guesses(address)
        identity = self._api_key(key)
        if identity is None:
            if limits is not None:
                limits.failed_guess(address)
            raise UnauthenticatedError("the API key is not valid")
        if limits is not None:
            limits.check(identity)
        log.info("token service login", extra={"principal": identity.principal,
                                               "tenant": identity.tenant})
        return self._issue(identity, uuid.uuid4().hex)

    async def refresh(self, params: dict[str, Any], *, limits: RateLimiter | None = None,
                      address: str = "") -> dict[str, Any]:
        """A new pair for a valid refresh token; `limits` as for `login`."""
        token = _string(params, "refreshToken")
        if limits is not None:
            limits.check_guesses(address)
        claims = self._decode(token)
        if claims is None or claims["typ"] != "refresh" or await self._revocations.is_revoked(
                claims["fam"]):
            if limits is not None:
                limits.failed_guess(address)
            raise UnauthenticatedError("the refresh token is not valid")
        if limits is not None:
            limits.check(self._identity(claims))
        if not await self._revocations.spend(claims["jti"], float(claims["exp"])):
            await self._revocations.revoke(claims["fam"], self._family_end())
            log.warning("refresh token reused: its family is revoked",
                        extra={"principal": claims["sub"], "tenant": claims.get("tenant")})
            raise UnauthenticatedError("the refresh token is not valid")
        return self._issue(self._identity(claims), claims["fam"])

    async def logout(self, identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        """Revoke the family of the given refresh token, or of the caller's access token."""
        token = params.get("refreshToken") or params.get("token")
        if token is not None and not isinstance(token, str):
            raise InvalidParamsError("refreshToken: must be a string")
        claims = self._decode(token) if token else None
        if claims is None or claims["sub"] != identity.principal or str(
                claims.get("tenant") or "") != identity.tenant:
            raise UnauthenticatedError("give the refresh token of this session to log out")
        await self._revocations.revoke(claims["fam"], self._family_end())
        return {"revoked": True}

    async def verify(self, params: dict[str, Any]) -> dict[str, Any]:
        claims = self._decode(_string(params, "token"))
        if claims is None or await self._revocations.is_revoked(claims["fam"]):
            return {"active": False}
        return {"active": True, "tokenType": claims["typ"], "principal": claims["sub"],
                "tenant": claims.get("tenant") or "", "roles": claims.get("roles") or [],
                "expiresAt": claims["exp"]}

    def _family_end(self) -> float:
        return self._clock() + self.settings.refresh_ttl


def _string(params: dict[str, Any], name: str) -> str:
    value = params.get(name) if isinstance(params, dict) else None
    if not isinstance(value, str) or not value:
        raise InvalidParamsError(f"{name}: a non-empty string is required")
    if len(value) > 16384:
        raise InvalidParamsError(f"{name}: too long")
    return value
