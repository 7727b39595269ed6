"""Request rate limits per principal and per tenant: token buckets on trio's clock.

Each caller (its owner key) and each tenant has a bucket of `burst` requests that
refills at `rate` per second; a call takes one from both, or is refused with
`RateLimitedError` saying when one will be there again (JSON-RPC error; HTTP 429 with
`Retry-After` on HTTP+JSON). The buckets live in this process: N replicas allow up to
N times the configured rate until they share state.

Logging in to the token service has no caller yet: a login with a valid API key takes
from that key's principal's buckets, and failed logins from a bucket of the client's
address (`check_guesses`, `failed_guess`), so one client cannot use up login for
everyone, and guessing keys is limited per address.
"""

from __future__ import annotations

import logging
import math

import attrs
import trio

from protocol.identity import Identity, owner_key
from protocol.security_errors import RateLimitedError

__all__ = ["RateLimit", "RateLimiter"]

log = logging.getLogger(__name__)

MAX_BUCKETS = 100_000
"""Buckets kept per kind; past it the full ones (idle callers) are dropped."""


@attrs.frozen
class RateLimit:
    """`rate` requests per second on average, `burst` at once."""

    rate: float
    burst: int

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``RATE/s[,BURST]`` or ``RATE/m[,BURST]`` (burst defaults to the rate, at least 1)."""
        spec, _, burst = text.partition(",")
        number, _, unit = spec.strip().partition("/")
        scale = {"s": 1.0, "m": 60.0}.get(unit.strip() or "s")
        try:
            if scale is None:
                raise ValueError(unit)
            rate = float(number) / scale
            return cls(rate, int(burst) if burst.strip() else max(1, math.ceil(float(number))))
        except ValueError:
            raise ValueError(f"rate limit {text!r}: expected RATE/s[,BURST] or RATE/m[,BURST]"
                             ) from None


class _Buckets:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def level(self, key: str, now: float) -> float:
        tokens, at = self._state.get(key, (float(self.limit.burst), now))
        return min(float(self.limit.burst), tokens + (now - at) * self.limit.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` has a whole token (0: it has one now)."""
        return max(0.0, (1.0 - self.level(key, now)) / self.limit.rate)

    def take(self, key: str, now: float) -> None:
        if len(self._state) >= MAX_BUCKETS:
            self._state = {k: v for k, v in self._state.items()
                           if self.level(k, now) < self.limit.burst}
        self._state[key] = (self.level(key, now) - 1.0, now)


class RateLimiter:
    """The per-principal and per-tenant buckets of one process."""

    def __init__(self, *, principal: RateLimit | None = None,
                 tenant: RateLimit | None = None) -> None:
        self._principal = _Buckets(principal) if principal else None
        self._tenant = _Buckets(tenant) if tenant else None
        guesses = principal or tenant
        self._guesses = _Buckets(guesses) if guesses else None
        """Failed logins per client address, at the per-caller rate (else the tenant's)."""

    def check_guesses(self, address: str) -> None:
        """`RateLimitedError` while the failed logins from `address` have spent its
        bucket: every login from there waits (a valid key too, or guessing would go on
        through the answers of the valid ones); other addresses are not held up."""
        if self._guesses is None:
            return
        wait = self._guesses.wait(address, trio.current_time())
        if wait > 0:
            log.info("rate limited", extra={"address": address, "scope": "failed logins"})
            raise RateLimitedError(f"too many failed logins from this address; retry in "
                                   f"{math.ceil(wait)} s", retry_after=wait)

    def failed_guess(self, address: str) -> None:
        """Count a failed login from `address` (after `check_guesses` let it through)."""
        if self._guesses is not None:
            self._guesses.take(address, trio.current_time())

    def check(self, identity: Identity) -> None:
        """Take one request from the caller's buckets, or raise `RateLimitedError`."""
        now = trio.current_time()
        pairs = [(b, k) for b, k in ((self._principal, owner_key(identity)),
                                     (self._tenant, identity.tenant)) if b is not None]
        wait = max((b.wait(k, now) for b, k in pairs), default=0.0)
        if wait > 0:
            which = "caller" if self._principal and self._principal.wait(
                owner_key(identity), now) > 0 else "tenant"
            log.info("rate limited", extra={"principal": identity.principal,
                                            "tenant": identity.tenant, "scope": which})
            raise RateLimitedError(
                f"too many requests for this {which}; retry in {math.ceil(wait)} s",
                retry_after=wait)
        for b, k in pairs:
            b.take(k, now)
