"""Token-service login under rate limits, on virtual time, against a real server: a
login with a valid API key takes from that key's principal's bucket (so one client
using up its logins does not stop another), and failed logins from a bucket of the
client's address (guessing is limited there, other addresses log in as before); over
the limit HTTP 429 with Retry-After, or JSON-RPC -32042, as every other limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio.testing

from runtime.http.auth import TokenEntry
from runtime.http.rate_limit import RateLimit
from runtime.http.token_service import TokenServiceSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from tests.agents import scripted_agent

ENTRIES = {"key-a": TokenEntry("a", None, "acme"), "key-b": TokenEntry("b", None, "acme")}
LOGIN = "trio-a2a/tokens.login"


@pytest.fixture
async def server(mock_clock: trio.testing.MockClock) -> AsyncIterator[RunningServer]:
    # the clock stands still unless the test moves it: the buckets refill only then
    security = SecurityConfig(token_entries=ENTRIES, rate_limit=RateLimit(1.0, 2),
                              token_service=TokenServiceSettings(secret="t" * 40))
    config = ServerConfig(port=0, store="memory", agent=scripted_agent(),
                          tokens={t: e.principal for t, e in ENTRIES.items()},
                          security=security)
    async with open_server(config) as srv:
        yield srv


def client_from(url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any of 127/8 on loopback)."""
    return httpx.AsyncClient(base_url=url,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


async def rest_login(c: httpx.AsyncClient, key: str) -> httpx.Response:
    return await c.post("/tokens:login", json={"apiKey": key})


async def rpc_login(c: httpx.AsyncClient, key: str) -> dict:
    r = await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": LOGIN,
                                "params": {"apiKey": key}}, headers={"A2A-Version": "1.0"})
    assert r.status_code == 200
    return r.json()


async def test_one_client_using_up_its_logins_does_not_stop_another(
        server: RunningServer, mock_clock: trio.testing.MockClock) -> None:
    async with client_from(server.url, "127.0.0.1") as c:
        assert (await rest_login(c, "key-a")).status_code == 200
        assert "result" in await rpc_login(c, "key-a")
        r = await rest_login(c, "key-a")  # a's burst of 2 is spent
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "RATE_LIMITED" in r.text and "key-a" not in r.text
        out = await rpc_login(c, "key-a")
        assert out["error"]["code"] == -32042
        assert "too many requests for this caller; retry in 1 s" in out["error"]["message"]
        # b, from the same address and unauthenticated like a, has a bucket of its own
        assert (await rest_login(c, "key-b")).status_code == 200
        assert "result" in await rpc_login(c, "key-b")
        # the logins came out of a's own bucket: its A2A calls wait too
        r = await c.get("/tasks", headers={"Authorization": "Bearer key-a",
                                           "A2A-Version": "1.0"})
        assert r.status_code == 429
        mock_clock.jump(1.0)
        assert (await rest_login(c, "key-a")).status_code == 200  # recovered


async def test_failed_logins_are_limited_per_address(
        server: RunningServer, mock_clock: trio.testing.MockClock) -> None:
    async with client_from(server.url, "127.0.0.2") as guesser, \
            client_from(server.url, "127.0.0.3") as other:
        for guess in ("key-x", "key-y"):
            r = await rest_login(guesser, guess)
            assert r.status_code == 401 and guess not in r.text
        r = await rest_login(guesser, "key-z")  # the address's burst of 2 is spent
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "too many failed logins from this address" in r.text
        out = await rpc_login(guesser, "key-q")
        assert out["error"]["code"] == -32042
        # a right guess from there waits too, else its answer would tell it apart
        assert (await rest_login(guesser, "key-a")).status_code == 429
        # another address is not held up: its failures and logins are its own
        assert (await rest_login(other, "key-x")).status_code == 401
        assert (await rest_login(other, "key-a")).status_code == 200
        mock_clock.jump(1.0)
        assert (await rest_login(guesser, "key-x")).status_code == 401  # one refilled
        assert (await rest_login(guesser, "key-b")).status_code == 429
        mock_clock.jump(1.0)
        assert (await rest_login(guesser, "key-b")).status_code == 200


async def test_refresh_takes_from_the_token_principal_or_the_address(
        server: RunningServer) -> None:
    async with client_from(server.url, "127.0.0.4") as guesser, \
            client_from(server.url, "127.0.0.5") as owner:
        tokens = (await rest_login(owner, "key-b")).json()
        for _ in range(2):
            r = await guesser.post("/tokens:refresh", json={"refreshToken": "forged"})
            assert r.status_code == 401
        r = await guesser.post("/tokens:refresh", json={"refreshToken": "forged"})
        assert r.status_code == 429 and "failed logins from this address" in r.text
        r = await owner.post("/tokens:refresh", json={"refreshToken": tokens["refreshToken"]})
        assert r.status_code == 200  # b's bucket: one left of 2
        r = await owner.post("/tokens:refresh",
                             json={"refreshToken": r.json()["refreshToken"]})
        assert r.status_code == 429 and "for this caller" in r.text
