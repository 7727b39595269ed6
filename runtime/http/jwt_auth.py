"""JWT bearer tokens, verified with PyJWT: HS256 with a shared secret, RS256, ES256 and
EdDSA with keys from a JWKS (an OIDC provider's URL, or a file).

Algorithm confusion is closed by choosing the key from the token's `alg` and then
allowing that one algorithm only: an HS256 token is checked against the shared secret
alone (never against a public key's bytes), an asymmetric one against the JWKS key its
`kid` names, whose own algorithm must be the token's. `alg: none` and every algorithm
not configured are refused before any key is looked at.

Keys from a URL are cached; a token naming an unknown `kid` refetches them (at most once
per `refetch_interval`), so a provider's key rotation needs no restart. Failures are
`JwtRejected` with a reason for the log; the client only ever hears 401.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import attrs
import httpx
import jwt
import trio

from protocol.identity import ClaimNames, Identity, IdentityError, identity_from_claims

__all__ = ["JwksSource", "JwtRejected", "JwtSettings", "JwtVerifier", "looks_like_jwt"]

log = logging.getLogger(__name__)

ASYMMETRIC = frozenset({"RS256", "ES256", "EdDSA"})
MAX_TOKEN = 16 * 1024


class JwtRejected(Exception):
    """The token is not valid here; `str()` is the reason, for the log only."""


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments: read as a JWT, not as a static token."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


@attrs.frozen
class JwtSettings:
    """How JWTs are checked; at least one of `secret`, `jwks_url`, `jwks_file`."""

    issuer: str | None = None
    audience: str | None = None
    secret: str | None = attrs.field(default=None, repr=False)
    """HS256 shared secret (at least 32 bytes)."""
    jwks_url: str | None = None
    jwks_file: str | None = None
    algorithms: tuple[str, ...] = ("HS256", "RS256", "ES256", "EdDSA")
    leeway: float = 30.0
    """Clock skew allowed on exp, nbf and iat, in seconds."""
    claims: ClaimNames = ClaimNames()
    default_roles: tuple[str, ...] = ("client",)
    """Roles of a token without a roles claim."""
    refetch_interval: float = 30.0
    """Least time between two JWKS fetches for an unknown kid."""
    cache_ttl: float = 3600.0
    """Keys older than this are fetched again before use."""

    def __attrs_post_init__(self) -> None:
        if not (self.secret or self.jwks_url or self.jwks_file):
            raise ValueError("JWT auth needs a secret, a JWKS URL or a JWKS file")
        if self.secret is not None and len(self.secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes (HS256)")
        unknown = set(self.algorithms) - ASYMMETRIC - {"HS256"}
        if unknown:
            raise ValueError(f"unsupported JWT algorithm(s): {', '.join(sorted(unknown))}; "
                             "use HS256, RS256, ES256 or EdDSA")


class JwksSource:
    """The signing keys of a JWKS URL or file, by kid, refreshed as the source rotates."""

    def __init__(self, *, url: str | None = None, file: str | None = None,
                 refetch_interval: float = 30.0, cache_ttl: float = 3600.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self._url, self._file = url, file
        self._refetch, self._ttl = refetch_interval, cache_ttl
        self._client = client
        self._keys: dict[str | None, list[jwt.PyJWK]] = {}
        self._fetched_at: float | None = None
        self._lock = trio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The key a token names; refetched when the keys are older than the cache TTL,
        or once per `refetch_interval` when `kid` is unknown (a rotation)."""
        async with self._lock:
            if self._fetched_at is None or trio.current_time() - self._fetched_at >= self._ttl:
                await self._load()
            found = self._pick(kid, alg)
            assert self._fetched_at is not None
            if found is None and trio.current_time() - self._fetched_at >= self._refetch:
                await self._load()
                found = self._pick(kid, alg)
            return found

    def _pick(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        candidates = [k for k in self._keys.get(kid, ()) if k.algorithm_name == alg]
        return candidates[0] if len(candidates) == 1 else None

    async def _load(self) -> None:
        self._fetched_at = trio.current_time()
        self.fetches += 1
        try:
            data = await self._read()
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (OSError, httpx.HTTPError, ValueError, jwt.PyJWKSetError,
                jwt.InvalidKeyError) as exc:
            log.warning("cannot load the JWKS; keeping the keys held",
                        extra={"source": self._url or self._file, "error": str(exc)})
            return
        by_kid: dict[str | None, list[jwt.PyJWK]] = {}
        for k in keys:
            by_kid.setdefault(k.key_id, []).append(k)
        self._keys = by_kid
        log.info("JWKS loaded", extra={"source": self._url or self._file, "keys": len(keys)})

    async def _read(self) -> dict[str, Any]:
        if self._file is not None:
            text = await trio.Path(self._file).read_text(encoding="utf-8")
            data = json.loads(text)
        else:
            assert self._url is not None
            if self._client is None:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    resp = await client.get(self._url)
            else:
                resp = await self._client.get(self._url)
            resp.raise_for_status()
            data = resp.json()
        if not isinstance(data, dict):
            raise ValueError("a JWKS is a JSON object with 'keys'")
        return data


class JwtVerifier:
    """Checks a JWT and names its identity."""

    def __init__(self, settings: JwtSettings, *, client: httpx.AsyncClient | None = None
                 ) -> None:
        self.settings = settings
        self.jwks = (JwksSource(url=settings.jwks_url, file=settings.jwks_file,
                                refetch_interval=settings.refetch_interval,
                                cache_ttl=settings.cache_ttl, client=client)
                     if settings.jwks_url or settings.jwks_file else None)
        if settings.jwks_file is not None and not Path(settings.jwks_file).is_file():
            raise ValueError(f"JWKS file {settings.jwks_file} does not exist")

    async def identify(self, token: str) -> Identity:
        """The identity of a valid token; `JwtRejected` otherwise."""
        claims = await self.claims(token)
        try:
            return identity_from_claims(claims, self.settings.claims,
                                        self.settings.default_roles)
        except IdentityError as exc:
            raise JwtRejected(str(exc)) from None

    async def claims(self, token: str) -> dict[str, Any]:
        s = self.settings
        if len(token) > MAX_TOKEN:
            raise JwtRejected("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise JwtRejected(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in s.algorithms:
            raise JwtRejected(f"algorithm {alg!r} is not accepted")
        key: Any
        if alg == "HS256":
            if s.secret is None:
                raise JwtRejected("HS256 tokens are not accepted (no shared secret)")
            key = s.secret
        else:
            if self.jwks is None:
                raise JwtRejected(f"{alg} tokens are not accepted (no JWKS)")
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise JwtRejected("kid is not a string")
            jwk = await self.jwks.key(kid, alg)
            if jwk is None:
                raise JwtRejected(f"no {alg} key with kid {kid!r}")
            key = jwk.key
        required = ["exp", *(["iss"] if s.issuer else []), *(["aud"] if s.audience else [])]
        try:
            return jwt.decode(token, key, algorithms=[alg], issuer=s.issuer,
                              audience=s.audience, leeway=s.leeway,
                              options={"require": required,
                                       "verify_aud": s.audience is not None})
        except jwt.PyJWTError as exc:
            raise JwtRejected(f"{type(exc).__name__}: {exc}") from None
        except (ValueError, TypeError) as exc:  # a key or claim PyJWT could not use
            raise JwtRejected(f"unusable token: {exc}") from None

