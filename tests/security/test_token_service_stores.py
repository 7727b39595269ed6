"""The token service's revocations on every store: the same behaviour on memory, SQLite
and PostgreSQL, and on PostgreSQL shared by the replicas of one database (a family
revoked on replica A is refused on replica B, a refresh token spent on A is a replay
on B), surviving restarts, with expired records pruned."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio

from runtime.http.auth import TokenEntry
from runtime.http.revocations import PRUNE_EVERY, Revocations
from runtime.http.token_service import TokenServiceSettings
from runtime.security import SecurityConfig
from runtime.server import RunningServer, ServerConfig, open_server
from runtime.store.postgres import open_postgres_backend
from runtime.store.postgres_security import PostgresSecurityState
from tests.agents import scripted_agent

ENTRIES = {"key-alice": TokenEntry("alice", ("operator",), "acme")}
SETTINGS = TokenServiceSettings(secret="t" * 40)


def config(store: str, tmp_path: Path, url: str | None, replica: str = "a") -> ServerConfig:
    return ServerConfig(port=0, store=store, data_dir=tmp_path, database_url=url,  # type: ignore[arg-type]
                        replica_id=replica, agent=scripted_agent(),
                        tokens={t: e.principal for t, e in ENTRIES.items()},
                        security=SecurityConfig(token_entries=ENTRIES, token_service=SETTINGS))


@contextlib.asynccontextmanager
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield c


async def post(c: httpx.AsyncClient, path: str, body: dict[str, Any],
               token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await c.post(path, json=body, headers=headers)


async def tasks_status(c: httpx.AsyncClient, token: str) -> int:
    return (await c.get("/tasks", headers={"Authorization": f"Bearer {token}"})).status_code


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return request.param, url


async def test_the_same_behaviour_on_every_store(store: tuple[str, str | None],
                                                 tmp_path: Path) -> None:
    kind, url = store
    with trio.fail_after(30):
        async with open_server(config(kind, tmp_path, url)) as srv, client(srv) as c:
            first = (await post(c, "/tokens:login", {"apiKey": "key-alice"})).json()
            assert await tasks_status(c, first["accessToken"]) == 200
            second = (await post(c, "/tokens:refresh",
                                 {"refreshToken": first["refreshToken"]})).json()
            assert await tasks_status(c, second["accessToken"]) == 200
            replay = await post(c, "/tokens:refresh", {"refreshToken": first["refreshToken"]})
            assert replay.status_code == 401
            assert await tasks_status(c, second["accessToken"]) == 401  # the family is revoked
            third = (await post(c, "/tokens:login", {"apiKey": "key-alice"})).json()
            out = await post(c, "/tokens:logout", {"refreshToken": third["refreshToken"]},
                             third["accessToken"])
            assert out.json() == {"revoked": True}
            assert await tasks_status(c, third["accessToken"]) == 401
        if kind == "memory":
            return
        async with open_server(config(kind, tmp_path, url)) as srv, client(srv) as c:
            for token in (second["accessToken"], third["accessToken"]):
                assert await tasks_status(c, token) == 401  # durable: after a restart too
            again = await post(c, "/tokens:refresh", {"refreshToken": second["refreshToken"]})
            assert again.status_code == 401


async def test_revoked_on_replica_a_is_refused_on_replica_b(postgres_url: str,
                                                            tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_server(config("postgres", tmp_path, postgres_url, "a")) as a, \
                open_server(config("postgres", tmp_path, postgres_url, "b")) as b, \
                client(a) as ca, client(b) as cb:
            pair = (await post(ca, "/tokens:login", {"apiKey": "key-alice"})).json()
            assert await tasks_status(cb, pair["accessToken"]) == 200  # known on B at once
            await post(ca, "/tokens:logout", {"refreshToken": pair["refreshToken"]},
                       pair["accessToken"])
            assert await tasks_status(cb, pair["accessToken"]) == 401
            r = await post(cb, "/tokens:refresh", {"refreshToken": pair["refreshToken"]})
            assert r.status_code == 401
            # a refresh token spent on A is a replay on B: the family goes, on both
            first = (await post(ca, "/tokens:login", {"apiKey": "key-alice"})).json()
            second = (await post(ca, "/tokens:refresh",
                                 {"refreshToken": first["refreshToken"]})).json()
            assert await tasks_status(cb, second["accessToken"]) == 200
            replay = await post(cb, "/tokens:refresh", {"refreshToken": first["refreshToken"]})
            assert replay.status_code == 401
            for c in (ca, cb):
                assert await tasks_status(c, second["accessToken"]) == 401
            # two replicas racing to spend one refresh token: exactly one wins
            third = (await post(ca, "/tokens:login", {"apiKey": "key-alice"})).json()
            results: list[int] = []

            async def refresh(c: httpx.AsyncClient) -> None:
                r = await post(c, "/tokens:refresh", {"refreshToken": third["refreshToken"]})
                results.append(r.status_code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(refresh, ca)
                nursery.start_soon(refresh, cb)
            assert sorted(results) == [200, 401]


async def test_expired_records_are_pruned_from_postgres(postgres_url: str) -> None:
    now = [1000.0]
    with trio.fail_after(20):
        async with open_postgres_backend(postgres_url) as backend:
            shared = PostgresSecurityState(backend)
            revocations = Revocations(shared=shared, clock=lambda: now[0])
            await revocations.revoke("old-family", 1500.0)
            assert await revocations.is_revoked("old-family")
            assert not await revocations.is_revoked("other-family")
            for n in range(PRUNE_EVERY - 3):  # with the revoke and the replay: 255 writes
                assert await revocations.spend(f"jti-{n}", 1500.0)
            assert not await revocations.spend("jti-0", 1500.0)  # a replay
            now[0] = 2000.0  # every record above has expired; the 256th write prunes
            assert await revocations.spend("fresh", 3000.0)
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT kind, id FROM token_revocations").fetchall()
    assert rows == [("used", "fresh")]
