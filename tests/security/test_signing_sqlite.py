"""Request-signing nonces in the SQLite store's file (schema v5, `request_nonces`): a
signed request replayed after a restart of the server within the window is refused;
the table's rules (first insert wins, per key, kept for twice the window, pruned); a
v4 file is migrated; a store that cannot record a nonce answers 503, never lets the
request through unchecked. The memory store keeps its nonces in the process."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import trio

from runtime.client.signing import HmacKey, signature_headers
from runtime.http.request_signing import PRUNE_EVERY, SignatureCheck
from runtime.http.revocations import open_revocations
from runtime.http.signing_settings import SigningSettings
from runtime.security import SecurityConfig, nonce_state
from runtime.server import ServerConfig, open_server
from runtime.store.sqlite import SCHEMA_VERSION, open_sqlite_backend
from runtime.store.sqlite_security import SQLiteNonces
from tests.agents import scripted_agent

SECRET = b"k" * 40
KEY = HmacKey("client-1", SECRET)
LIST = b'{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{}}'
SIGNING = SigningSettings(keys={"client-1": SECRET}, window=300.0)


def config(store: str, data_dir: Path) -> ServerConfig:
    return ServerConfig(port=0, store=store, data_dir=data_dir,  # type: ignore[arg-type]
                        agent=scripted_agent(),
                        security=SecurityConfig(request_signing=SIGNING))


def signed_headers(url: str) -> dict[str, str]:
    return {"A2A-Version": "1.0", "Content-Type": "application/json",
            **signature_headers(KEY, "POST", url, LIST, time.time())}


def nonces_in(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT key_id, nonce FROM request_nonces ORDER BY nonce").fetchall()
    finally:
        conn.close()


async def test_a_replay_after_a_restart_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_server(config("sqlite", tmp_path)) as srv, httpx.AsyncClient() as c:
            url = srv.url + "/"
            headers = signed_headers(url)
            first = await c.post(url, content=LIST, headers=headers)
            assert first.status_code == 200 and "result" in first.json()
        assert nonces_in(tmp_path / "tasks.sqlite3") == [
            ("client-1", headers["x-a2a-nonce"])]
        # a new server on the same data directory; the signature covers the path "/",
        # not the port, so the captured request is valid there but for its nonce
        async with open_server(config("sqlite", tmp_path)) as srv, httpx.AsyncClient() as c:
            url = srv.url + "/"
            replay = await c.post(url, content=LIST, headers=headers)
            assert replay.status_code == 401, replay.text
            assert "already used" in replay.json()["error"]["message"]
            fresh = await c.post(url, content=LIST, headers=signed_headers(url))
            assert fresh.status_code == 200


async def test_the_memory_store_keeps_its_nonces_in_the_process(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_server(config("memory", tmp_path)) as srv, httpx.AsyncClient() as c:
            url = srv.url + "/"
            headers = signed_headers(url)
            assert (await c.post(url, content=LIST, headers=headers)).status_code == 200
            assert (await c.post(url, content=LIST, headers=headers)).status_code == 401
    assert nonce_state("memory", object(), None) is None
    assert not (tmp_path / "tasks.sqlite3").exists()


async def test_the_nonce_table(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    with trio.fail_after(20):
        async with open_sqlite_backend(path) as backend:
            nonces = SQLiteNonces(backend)
            assert await nonces.first_use("k", "n-1", 1000.0, 600.0)
            assert not await nonces.first_use("k", "n-1", 1000.0, 600.0)  # first insert wins
            assert not await nonces.first_use("k", "n-1", 1599.0, 600.0)  # within: a replay
            assert await nonces.first_use("other-key", "n-1", 1599.0, 600.0)  # per key
            assert await nonces.first_use("k", "n-1", 2200.0, 600.0)  # past keeping: new
            assert not await nonces.first_use("k", "n-1", 2300.0, 600.0)
            assert await nonces.prune_nonces(2000.0) == 1  # other-key's, seen at 1599
            assert nonces_in(path) == [("k", "n-1")]
            # the middleware prunes every PRUNE_EVERY nonces, by its own clock
            now = [5000.0]
            check = SignatureCheck(SIGNING, _never, max_body=1024, clock=lambda: now[0],
                                   shared=nonces)
            for n in range(PRUNE_EVERY - 1):
                assert await check._first_use_shared("k", f"m-{n}", 5000.0)
            now[0] = 5601.0
            assert await check._first_use_shared("k", "last", 5601.0)  # prunes before 5001
        assert nonces_in(path) == [("k", "last")]
        # kept in the file: a new opening of it sees them
        async with open_sqlite_backend(path) as backend:
            assert not await SQLiteNonces(backend).first_use("k", "last", 5700.0, 600.0)


async def test_a_v4_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    async with open_sqlite_backend(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE request_nonces")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    async with open_sqlite_backend(path) as backend:
        assert await SQLiteNonces(backend).first_use("k", "n", 1.0, 600.0)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"request_nonces", "request_nonces_by_time"} <= names
    finally:
        conn.close()


async def test_a_nonce_that_cannot_be_recorded_is_503(tmp_path: Path) -> None:
    """The file locked by another process past the busy timeout: the request is
    refused with 503 and never reaches the app."""
    path = tmp_path / "tasks.sqlite3"
    sent: list[dict] = []  # type: ignore[type-arg]

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    async def receive() -> dict:  # type: ignore[type-arg]
        return {"type": "http.request", "body": LIST, "more_body": False}

    headers = signature_headers(KEY, "POST", "http://x/", LIST, time.time())
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    with trio.fail_after(20):
        async with open_sqlite_backend(path, busy_timeout=0.05) as backend:
            check = SignatureCheck(SIGNING, _never, max_body=1024,
                                   shared=SQLiteNonces(backend))
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            try:
                await check(scope, receive, send)  # type: ignore[arg-type]
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert sent[0]["status"] == 503
            assert b"cannot be checked now" in sent[1]["body"]
            assert nonces_in(path) == []
            sent.clear()
            original = check.app  # the same request once the file is free: it passes
            reached: list[str] = []

            async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
                reached.append(scope["trio_a2a.signed_by"])

            check.app = app
            await check(scope, receive, send)  # type: ignore[arg-type]
            check.app = original
            assert reached == ["client-1"]


async def test_revocations_are_durable_on_sqlite(tmp_path: Path) -> None:
    """The token service's revocations are kept in the store's file: a family revoked
    and a refresh token spent before a restart stay so after it."""
    path = tmp_path / "tasks.sqlite3"
    later = time.time() + 3600
    async with open_revocations(path) as revocations:
        await revocations.revoke("family-1", later)
        assert await revocations.spend("jti-1", later)
    async with open_revocations(path) as revocations:
        assert await revocations.is_revoked("family-1")
        assert not await revocations.is_revoked("family-2")
        assert not await revocations.spend("jti-1", later)
        assert await revocations.spend("jti-2", later)


async def _never(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")
