"""Request-signing nonces in the store: on PostgreSQL shared by the replicas, so a signed
request replayed to another replica within the window is refused there too; kept for
twice the window, then pruned; a single-process store refuses a replay too (in its
file for SQLite, across restarts: test_signing_sqlite.py; in the process for memory)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from runtime.client.signing import HmacKey, signature_headers
from runtime.http.request_signing import PRUNE_EVERY, SignatureCheck
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig
from runtime.server import ServerConfig, open_server
from runtime.store.postgres import open_postgres_backend
from runtime.store.postgres_security import PostgresSecurityState
from tests.agents import scripted_agent

SECRET = b"k" * 40
KEY = HmacKey("client-1", SECRET)
LIST = b'{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{}}'
SIGNING = SigningSettings(keys={"client-1": SECRET}, window=300.0)


def config(store: str, tmp_path: Path, url: str | None, replica: str) -> ServerConfig:
    return ServerConfig(port=0, store=store, data_dir=tmp_path / replica,  # type: ignore[arg-type]
                        database_url=url, replica_id=replica, agent=scripted_agent(),
                        security=SecurityConfig(request_signing=SIGNING))


def signed(base_url: str) -> tuple[dict[str, str], str]:
    """The headers of one signed ListTasks to `base_url`, and its URL."""
    url = base_url + "/"
    headers = {"A2A-Version": "1.0", "Content-Type": "application/json",
               **signature_headers(KEY, "POST", url, LIST, time.time())}
    return headers, url


async def send(c: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    return await c.post(url, content=LIST, headers=headers)


async def test_a_replay_to_another_replica_is_refused(postgres_url: str,
                                                      tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_server(config("postgres", tmp_path, postgres_url, "a")) as a, \
                open_server(config("postgres", tmp_path, postgres_url, "b")) as b, \
                httpx.AsyncClient() as c:
            # the same path on both, so one signature is valid on either replica
            headers, _ = signed(a.url)
            first = await send(c, a.url + "/", headers)
            assert first.status_code == 200 and "result" in first.json()
            for replica in (b, a):
                again = await send(c, replica.url + "/", headers)
                assert again.status_code == 401, again.text
                assert "already used" in again.json()["error"]["message"]
            fresh, _ = signed(b.url)
            assert (await send(c, b.url + "/", fresh)).status_code == 200
    with psycopg.connect(postgres_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM request_nonces").fetchone()
    assert count == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_single_process_stores_keep_their_own(store: str, tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_server(config(store, tmp_path, None, "a")) as srv, \
                httpx.AsyncClient() as c:
            headers, url = signed(srv.url)
            assert (await send(c, url, headers)).status_code == 200
            replay = await send(c, url, headers)
            assert replay.status_code == 401 and "already used" in replay.text


async def test_shared_nonces_kept_for_twice_the_window_then_pruned(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with open_postgres_backend(postgres_url) as backend:
            nonces = PostgresSecurityState(backend)
            assert await nonces.first_use("k", "n-1", 1000.0, 600.0)
            assert not await nonces.first_use("k", "n-1", 1599.0, 600.0)  # within: a replay
            assert await nonces.first_use("other-key", "n-1", 1599.0, 600.0)  # per key
            assert await nonces.first_use("k", "n-1", 2200.0, 600.0)  # past keeping: new
            assert await nonces.prune_nonces(2000.0) == 1  # other-key's, seen at 1599
            # the middleware prunes every PRUNE_EVERY nonces, by its own clock
            now = [5000.0]
            check = SignatureCheck(SIGNING, _never, max_body=1024, clock=lambda: now[0],
                                   shared=nonces)
            for n in range(PRUNE_EVERY - 1):
                assert await check._first_use_shared("k", f"m-{n}", 5000.0)
            now[0] = 5601.0
            assert await check._first_use_shared("k", "last", 5601.0)  # prunes before 5001
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT nonce FROM request_nonces ORDER BY nonce").fetchall()
    assert rows == [("last",)]


async def _never(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")
