"""Who may use the admin API: the holder of the server's admin token, or an identity
whose roles grant the `admin` permission (the built-in operator and admin roles).

The admin API is off unless the server has an admin token (`--admin-token`,
`TRIO_A2A_ADMIN_TOKEN`) or client auth (tokens, JWTs, the token service), whose
identities may hold `admin`: then every admin path answers 404 and every admin method
-32601, saying how to turn it on. Anonymous callers (auth off) never pass. With it on,
a request without a credential is refused with 401 and one whose credential is neither
(a worker's, a client's without `admin`, a wrong one) with 403. The admin API sees and
changes every tenant's tasks, so an identity with a tenant is refused (403) even with
`admin`: it is for deployment-wide identities. The messages never echo what was sent;
the admin token is compared in constant time.

An identity bound to a request-signing key it must use (`principal=P required` in the
signing keys) must sign its admin requests with it too, as its A2A calls: else 401
(-32044 `SIGNATURE_REQUIRED`).

A request that passes is then taken from the server's rate limits (`--rate-limit`,
`--tenant-rate-limit`, the same buckets as the A2A calls): an identity's own bucket, the
admin token's holder one bucket of its own (`ADMIN_TOKEN_PRINCIPAL`). Over the limit it
is refused as the A2A calls are: HTTP 429 with `Retry-After`, JSON-RPC -32042.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

import attrs

from protocol.identity import Identity
from protocol.security_errors import RateLimitedError, SignatureRequiredError
from runtime.http.identity import Authenticator, bearer_token
from runtime.http.signing_settings import SigningSettings

__all__ = ["ADMIN_PERMISSION", "ADMIN_TOKEN_PRINCIPAL", "AdminGate", "Refusal"]

ADMIN_PERMISSION = "admin"
ADMIN_TOKEN_PRINCIPAL = "admin-token"
"""Whose rate-limit bucket the admin token's requests take from."""
_ADMIN_TOKEN = Identity(ADMIN_TOKEN_PRINCIPAL, roles=frozenset({"admin"}), via="admin-token")


@attrs.frozen
class Refusal:
    """Why an admin request is refused: HTTP status, JSON-RPC code, reason, message."""

    status: int
    rpc_code: int
    reason: str
    message: str
    retry_after: int | None = None
    """Seconds until a rate-limited caller may call again (`Retry-After`)."""
    rpc_data: Any = None
    """The JSON-RPC error's `data` (the ErrorInfo of a rate-limited call)."""

    def body(self) -> dict[str, object]:
        """The HTTP+JSON error body (google.rpc.Status, as the A2A binding answers)."""
        return {"error": {"code": self.status, "status": self.reason, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is not None:
            return {"Retry-After": str(self.retry_after)}
        return {"WWW-Authenticate": 'Bearer realm="admin"'} if self.status == 401 else {}

    @classmethod
    def rate_limited(cls, err: RateLimitedError) -> Refusal:
        return cls(429, err.code, err.reason, err.message, retry_after=err.retry_seconds,
                   rpc_data=err.to_jsonrpc(version="1.0").get("data"))


OFF = Refusal(404, -32601, "NOT_FOUND",
              "the admin API is off: start the server with --admin-token "
              "(or TRIO_A2A_ADMIN_TOKEN), or with client auth and identities whose roles "
              "grant 'admin', to turn it on")
MISSING = Refusal(401, -32040, "UNAUTHENTICATED",
                  "the admin API needs the admin token, or a credential whose roles grant "
                  "'admin' (Authorization: Bearer <token>)")
WRONG = Refusal(403, -32041, "PERMISSION_DENIED",
                "the credential sent is neither the admin token nor one whose roles grant "
                "the 'admin' permission")
TENANT = Refusal(403, -32041, "PERMISSION_DENIED",
                 "the admin API acts on every tenant's tasks: it is not for an identity "
                 "of one tenant")


class AdminGate:
    """Checks the Authorization header of an admin request: the admin token, or an
    identity of `authenticator` (the server's) with the `admin` permission."""

    def __init__(self, token: str | None, authenticator: Authenticator | None = None,
                 limiter: Any = None, signing: SigningSettings | None = None) -> None:
        self._token = token.encode() if token else None
        self._signing = signing
        self._authenticator = authenticator
        self._limiter = limiter  # the server's RateLimiter (runtime.http); None: unlimited

    @property
    def enabled(self) -> bool:
        return self._token is not None or self._identities

    @property
    def _identities(self) -> bool:
        return self._authenticator is not None and self._authenticator.enabled

    async def refuse(self, authorizations: Sequence[str], signed_by: str | None = None
                     ) -> Refusal | None:
        """None if the request may pass (and is taken from the rate limits); else why
        not. `authorizations` are all of its Authorization headers (more than one is
        refused, as on the A2A paths); `signed_by` the key that signed it."""
        identity, refusal = await self._identify(authorizations, signed_by)
        if refusal is not None or identity is None or self._limiter is None:
            return refusal
        try:
            self._limiter.check(identity)
        except RateLimitedError as err:
            return Refusal.rate_limited(err)
        return None

    async def _identify(self, authorizations: Sequence[str], signed_by: str | None
                        ) -> tuple[Identity | None, Refusal | None]:
        if not self.enabled:
            return None, OFF
        if len(authorizations) > 1:
            return None, Refusal(400, -32600, "INVALID_ARGUMENT",
                                 f"the request has {len(authorizations)} Authorization "
                                 "headers; send exactly one")
        credential = bearer_token(authorizations[0]) if authorizations else None
        if credential is None:
            return None, MISSING
        if self._token is not None and hmac.compare_digest(credential.encode(), self._token):
            return _ADMIN_TOKEN, None
        authn = self._authenticator
        if authn is None or not self._identities:
            return None, WRONG
        identity = await authn.identify(authorizations[0])
        if identity is not None and identity.via != "anonymous" and self._signing:
            try:
                self._signing.check_caller(identity.principal, signed_by)
            except SignatureRequiredError as err:
                return None, Refusal(401, err.code, err.reason, err.message)
        if identity is None or identity.via == "anonymous" or not authn.roles.allows(
                identity.roles, ADMIN_PERMISSION):
            return None, WRONG
        if identity.tenant:
            return None, TENANT
        return identity, None
