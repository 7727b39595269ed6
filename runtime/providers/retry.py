"""Retrying a provider stream: only before its first event, never a replay.

Rate limits (429) and server trouble (5xx, a refused or cut connection before
anything arrived) are usually gone a moment later, so a turn is tried again after
the wait the server asked for (`Retry-After`) or an exponential backoff with
jitter from an injected seeded `random.Random`. Once an event has reached the
caller, a failure becomes `ProviderStreamBroken` instead: replaying would show the
user the start of the answer twice. Waits use `trio.sleep`, so tests run them on
virtual time.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import attrs
import trio

from runtime.providers.base import ProviderError, ProviderEvent, ProviderStreamBroken, TextDelta

__all__ = ["RetryPolicy", "parse_retry_after", "retrying"]

log = logging.getLogger(__name__)


@attrs.frozen
class RetryPolicy:
    """How often and how long to retry a retryable failure.

    The wait before the n-th retry is the server's `Retry-After` when it gave one,
    else ``min(max_delay, base * factor ** (n - 1)) * (1 + jitter * rng.uniform(-1, 1))``
    (the supervisor's rule). A `Retry-After` longer than `max_retry_after` is not
    waited for: the error is raised at once (a quota reset hours away is not a blip).
    """

    max_retries: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    base: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    jitter: float = attrs.field(default=0.2, validator=[attrs.validators.ge(0),
                                                        attrs.validators.le(1)])
    max_retry_after: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The jittered exponential wait before retry number `failures` (from 1)."""
        delay = min(self.max_delay, self.base * self.factor ** (max(failures, 1) - 1))
        return delay * (1 + self.jitter * rng.uniform(-1, 1))

    def wait_for(self, exc: ProviderError, failures: int, rng: random.Random) -> float | None:
        """The wait before retrying after `exc`, or None when it must not be retried."""
        if not exc.retryable or failures > self.max_retries:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.max_retry_after else None
        return self.backoff(failures, rng)


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.timestamp() if isinstance(parsed, datetime) else None


def parse_retry_after(value: str | None, *, date: str | None = None,
                      now: Callable[[], float] | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date.

    An HTTP date is measured against the response's own `Date` header when given
    (no dependence on this machine's clock being right), else against `now()`
    (wall-clock seconds). Unparseable values give None; past dates give 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # no negatives, NaN
    when = _parse_http_date(value)
    if when is None:
        return None
    reference = _parse_http_date(date) if date else None
    if reference is None:
        if now is None:
            return None
        reference = now()
    return max(0.0, when - reference)


async def retrying(
    attempt: Callable[[], AsyncIterator[ProviderEvent]],
    *,
    policy: RetryPolicy,
    rng: random.Random,
    provider: str,
) -> AsyncIterator[ProviderEvent]:
    """Run `attempt()` until it streams to its end, retrying per `policy`.

    A `ProviderError` before the first event is retried if the policy allows; after
    it, it is re-raised as `ProviderStreamBroken` carrying the text streamed so far.
    """
    failures = 0
    while True:
        delivered = False
        text: list[str] = []
        try:
            async with contextlib.aclosing(attempt()) as events:
                async for event in events:
                    delivered = True
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    yield event
            return
        except ProviderStreamBroken:
            raise
        except ProviderError as exc:
            if delivered:
                raise ProviderStreamBroken(f"{exc.message} (the stream broke after output had "
                                           "been delivered; not retried)",
                                           partial_text="".join(text), status=exc.status) from exc
            failures += 1
            wait = policy.wait_for(exc, failures, rng)
            if wait is None:
                if failures > 1:  # say that retrying was tried, for the task's failure message
                    exc.message = f"{exc.message} (gave up after {failures} attempts)"
                    exc.args = (exc.message,)
                raise
            log.warning("provider call failed, retrying in %.3f s: %s", wait, exc.message,
                        extra={"provider": provider, "status": exc.status,
                               "attempt": failures, "delay_s": wait})
        await trio.sleep(wait)
