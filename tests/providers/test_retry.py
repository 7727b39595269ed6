"""Retry-After parsing and the retry policy, and the package's exports."""

from __future__ import annotations

import importlib
import pkgutil
import random

import pytest

import runtime.providers
from runtime.providers import ProviderError, RetryPolicy, parse_retry_after


@pytest.mark.parametrize("value,expected", [
    ("2", 2.0), (" 0 ", 0.0), ("1.5", 1.5), ("-1", None), ("soon", None), (None, None),
    ("nan", None),
])
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", date=date) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", date=date) == 0.0  # past
    # without a Date header, against the injected wall clock
    now = parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now=lambda: 1792567670.0)
    assert now == 10.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None  # no reference


def test_policy_waits() -> None:
    policy = RetryPolicy(max_retries=2, base=1.0, factor=2.0, max_delay=3.0, jitter=0.0,
                         max_retry_after=10.0)
    rng = random.Random(1)
    err = ProviderError("x", retryable=True)
    assert [policy.wait_for(err, n, rng) for n in (1, 2, 3)] == [1.0, 2.0, None]
    assert policy.backoff(5, rng) == 3.0  # capped
    assert policy.wait_for(ProviderError("x", retryable=True, retry_after=7), 1, rng) == 7
    assert policy.wait_for(ProviderError("x", retryable=True, retry_after=11), 1, rng) is None
    assert policy.wait_for(ProviderError("x"), 1, rng) is None


def test_jitter_is_seeded() -> None:
    policy = RetryPolicy(jitter=0.5)
    a = [policy.backoff(n, random.Random(9)) for n in (1, 2, 3)]
    b = [policy.backoff(n, random.Random(9)) for n in (1, 2, 3)]
    assert a == b and a != [1.0, 2.0, 4.0]


def test_package_reexports_every_public_name() -> None:
    missing = {}
    for info in pkgutil.iter_modules(runtime.providers.__path__):
        module = importlib.import_module(f"runtime.providers.{info.name}")
        lacking = sorted(n for n in getattr(module, "__all__", ())
                         if n not in runtime.providers.__all__)
        if lacking:
            missing[info.name] = lacking
    assert missing == {}
    assert all(hasattr(runtime.providers, n) for n in runtime.providers.__all__)
