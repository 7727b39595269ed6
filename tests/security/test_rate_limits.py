"""Rate limits per principal and per tenant, on virtual time: over the limit a JSON-RPC
error (-32042) or HTTP 429 with Retry-After; the bucket refills and calls pass again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from protocol.identity import Identity
from protocol.security_errors import RateLimitedError
from runtime.http.auth import TokenEntry
from runtime.http.rate_limit import RateLimit, RateLimiter
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent
from tests.security.matrix import Call, perform

ENTRIES = {"tok-a": TokenEntry("a", None, "acme"), "tok-b": TokenEntry("b", None, "acme"),
           "tok-c": TokenEntry("c", None, "globex")}
LIST = Call("POST", "/", {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}},
            "1.0", rpc=True)
REST_LIST = Call("GET", "/tasks", version="1.0")


@pytest.fixture
async def server(mock_clock: trio.testing.MockClock) -> AsyncIterator[RunningServer]:
    # the clock stands still unless the test moves it: the buckets refill only then
    security = SecurityConfig(token_entries=ENTRIES, rate_limit=RateLimit(1.0, 2),
                              tenant_rate_limit=RateLimit(0.5, 4))
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          security=security)
    async with open_server(config) as srv:
        yield srv


async def test_over_the_limit_then_recovery(server: RunningServer,
                                            mock_clock: trio.testing.MockClock) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await perform(c, LIST, "tok-a")).code is None
        assert (await perform(c, REST_LIST, "tok-a")).status == 200
        out = await perform(c, LIST, "tok-a")  # the principal's burst of 2 is spent
        assert (out.status, out.code) == (200, -32042)
        assert "too many requests for this caller; retry in 1 s" in out.text
        async with c.stream("GET", "/tasks", headers={"Authorization": "Bearer tok-a",
                                                      "A2A-Version": "1.0"}) as r:
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            body = (await r.aread()).decode()
            assert "RATE_LIMITED" in body and "tok-a" not in body
        mock_clock.jump(0.5)
        assert (await perform(c, LIST, "tok-a")).code == -32042  # half a token: not yet
        mock_clock.jump(0.5)
        assert (await perform(c, LIST, "tok-a")).code is None  # recovered
        # the tenant bucket (4, and 0.5 refilled) is shared: b gets one call, then acme is over
        assert (await perform(c, LIST, "tok-b")).code is None
        out = await perform(c, LIST, "tok-b")
        assert out.code == -32042 and "for this tenant" in out.text
        assert (await perform(c, LIST, "tok-c")).code is None  # another tenant is not
        mock_clock.jump(2.0)
        assert (await perform(c, LIST, "tok-b")).code is None


async def test_refused_calls_do_not_spend_the_budget(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as c:
        for _ in range(5):  # 401s and permission refusals come before the limit
            assert (await perform(c, LIST, "wrong")).status == 401
        assert (await perform(c, LIST, "tok-c")).code is None


async def test_buckets_on_virtual_time(mock_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(principal=RateLimit(2.0, 1))
    who = Identity("a")
    limiter.check(who)
    with pytest.raises(RateLimitedError) as info:
        limiter.check(who)
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.retry_seconds == 1


async def test_buckets_refill_exactly(mock_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(principal=RateLimit(2.0, 1))
    who = Identity("a")
    limiter.check(who)
    mock_clock.jump(0.49)
    with pytest.raises(RateLimitedError):
        limiter.check(who)
    mock_clock.jump(0.01)
    limiter.check(who)


def test_rate_limit_syntax() -> None:
    assert RateLimit.parse("10/s") == RateLimit(10.0, 10)
    assert RateLimit.parse("120/m,5") == RateLimit(2.0, 5)
    for bad in ("fast", "10/h", "0/s", "10/s,0", "-1/s"):
        with pytest.raises(ValueError):
            RateLimit.parse(bad)
